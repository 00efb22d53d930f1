//! `relabel_configs` entries: parsing, defaults and Prometheus's per-action
//! validation (`model/relabel/relabel.go`). Applying them lives in
//! ember-scrape.

use std::fmt;

use ember_model::names::{is_valid_label_name, NameValidation};
use ember_model::FastRegex;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Pos;

/// What a relabel rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Case-insensitive, as Prometheus.
    pub fn parse(s: &str) -> Option<Action> {
        let all = [
            Action::Replace,
            Action::Keep,
            Action::Drop,
            Action::KeepEqual,
            Action::DropEqual,
            Action::HashMod,
            Action::LabelMap,
            Action::LabelDrop,
            Action::LabelKeep,
            Action::Lowercase,
            Action::Uppercase,
        ];
        let lower = s.to_lowercase();
        all.into_iter().find(|a| a.as_str() == lower)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Action::parse(&s).ok_or_else(|| D::Error::custom(format!("unknown relabel action {s:?}")))
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A relabel regex: anchored as `^(?s:RE)$`, with capture groups for
/// `replace`/`labelmap` and a fast matcher for the match-only actions.
#[derive(Clone)]
pub struct RelabelRegex {
    source: String,
    captures: regex::Regex,
    fast: FastRegex,
}

pub const DEFAULT_REGEX: &str = "(.*)";

impl RelabelRegex {
    pub fn new(re: &str) -> Result<RelabelRegex, String> {
        let captures = regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| regex_error(&e))?;
        let fast = FastRegex::new(re).map_err(|e| e.to_string())?;
        Ok(RelabelRegex { source: re.to_owned(), captures, fast })
    }

    /// The regex as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whole-string match.
    #[inline]
    pub fn is_match(&self, s: &str) -> bool {
        self.fast.is_match(s)
    }

    /// The anchored regex with its capture groups.
    pub fn captures_regex(&self) -> &regex::Regex {
        &self.captures
    }

    pub fn is_default(&self) -> bool {
        self.source == DEFAULT_REGEX
    }
}

/// Go prints `error parsing regexp: <what>: <where>`; the regex crate's
/// multi-line message is folded onto one line.
fn regex_error(e: &regex::Error) -> String {
    let msg = e.to_string();
    let last = msg.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("invalid regex");
    format!("error parsing regexp: {}", last.trim_start_matches("error: ").trim())
}

impl Default for RelabelRegex {
    fn default() -> Self {
        // "(.*)" is a constant that always compiles.
        RelabelRegex::new(DEFAULT_REGEX).unwrap_or_else(|e| unreachable!("default relabel regex: {e}"))
    }
}

impl PartialEq for RelabelRegex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}
impl Eq for RelabelRegex {}

impl fmt::Debug for RelabelRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelabelRegex({:?})", self.source)
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An explicit null is the empty regex, as in Prometheus.
        let s = Option::<String>::deserialize(d)?.unwrap_or_default();
        RelabelRegex::new(&s).map_err(D::Error::custom)
    }
}

impl Serialize for RelabelRegex {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.source)
    }
}

fn default_separator() -> String {
    ";".into()
}
pub const DEFAULT_REPLACEMENT: &str = "$1";
fn default_replacement() -> String {
    DEFAULT_REPLACEMENT.into()
}

/// One relabelling rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[serde(deserialize_with = "de_label_names", serialize_with = "flow_seq")]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator", deserialize_with = "crate::types::de_null_default")]
    pub separator: String,
    #[serde(default)]
    pub regex: RelabelRegex,
    #[serde(default, skip_serializing_if = "crate::types::is_zero_u64")]
    pub modulus: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "crate::types::de_null_default")]
    pub target_label: String,
    #[serde(default = "default_replacement", deserialize_with = "crate::types::de_null_default")]
    pub replacement: String,
    #[serde(default)]
    pub action: Action,
    /// Where the rule starts in the file, for validation errors.
    #[serde(skip)]
    pub(crate) pos: Pos,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: default_separator(),
            regex: RelabelRegex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: default_replacement(),
            action: Action::Replace,
            pos: Pos::default(),
        }
    }
}

/// Prometheus prints `source_labels` in flow style: `[a, b]`.
fn flow_seq<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    serde_saphyr::FlowSeq(v).serialize(s)
}

fn de_label_names<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let v: Vec<String> = crate::types::de_null_default(d)?;
    if let Some(bad) = v.iter().find(|n| n.is_empty()) {
        return Err(D::Error::custom(format!("{bad:?} is not a valid label name")));
    }
    Ok(v)
}

impl crate::checked::Check for RelabelConfig {
    fn set_pos(&mut self, pos: Pos) {
        self.pos = pos;
    }
}

/// `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`: a legacy label name that
/// may contain `$1`/`${name}` references.
fn is_legacy_name_with_vars(s: &str) -> bool {
    let b = s.as_bytes();
    if b.is_empty() {
        return false;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut i = 0;
    // The first unit must be a letter/underscore or a reference; after that
    // any word character or reference may follow.
    let mut first = true;
    while i < b.len() {
        if b[i] == b'$' {
            if i + 1 < b.len() && b[i + 1] == b'{' {
                let start = i + 2;
                let mut j = start;
                while j < b.len() && word(b[j]) {
                    j += 1;
                }
                if j == start || j >= b.len() || b[j] != b'}' {
                    return false;
                }
                i = j + 1;
            } else {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && word(b[j]) {
                    j += 1;
                }
                if j == start {
                    return false;
                }
                i = j;
            }
        } else if first {
            if !(b[i].is_ascii_alphabetic() || b[i] == b'_') {
                return false;
            }
            i += 1;
        } else {
            if !word(b[i]) {
                return false;
            }
            i += 1;
        }
        first = false;
    }
    true
}

impl RelabelConfig {
    /// Prometheus's `relabel.Config.Validate(scheme)`, same messages.
    pub fn validate(&self, scheme: NameValidation) -> Result<(), String> {
        let a = self.action;
        if a == Action::HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        let needs_target = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!("relabel configuration for {a} action requires 'target_label' value"));
        }
        let name_with_vars_ok = |s: &str| match scheme {
            NameValidation::Legacy => is_legacy_name_with_vars(s),
            NameValidation::Utf8 => true,
        };
        let invalid_target = || format!("{:?} is invalid 'target_label' for {a} action", self.target_label);
        if a == Action::Replace {
            let ok = if self.target_label.contains('$') {
                name_with_vars_ok(&self.target_label)
            } else {
                is_valid_label_name(&self.target_label, scheme)
            };
            if !ok {
                return Err(invalid_target());
            }
        }
        let case_or_eq =
            matches!(a, Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual);
        if case_or_eq && !is_valid_label_name(&self.target_label, scheme) {
            return Err(invalid_target());
        }
        if case_or_eq && self.replacement != DEFAULT_REPLACEMENT {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if a == Action::LabelMap && !name_with_vars_ok(&self.replacement) {
            return Err(format!("{:?} is invalid 'replacement' for {a} action", self.replacement));
        }
        if a == Action::HashMod && !is_valid_label_name(&self.target_label, scheme) {
            return Err(invalid_target());
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (!self.regex.is_default()
                || self.modulus != 0
                || self.separator != ";"
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != ";"
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!("{a} action requires only 'regex', and no other fields"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_name_with_vars_matches_prometheus_pattern() {
        for ok in ["foo", "_x", "${1}", "$1", "a$1", "foo_${bar}_baz", "$1$2", "x1"] {
            assert!(is_legacy_name_with_vars(ok), "{ok}");
        }
        for bad in ["", "1abc", "a-b", "${}", "$", "${1", "a.b", "$-"] {
            assert!(!is_legacy_name_with_vars(bad), "{bad}");
        }
    }

    #[test]
    fn actions_parse_case_insensitively() {
        assert_eq!(Action::parse("LabelMap"), Some(Action::LabelMap));
        assert_eq!(Action::parse("KEEPEQUAL"), Some(Action::KeepEqual));
        assert_eq!(Action::parse("frobnicate"), None);
    }

    #[test]
    fn regex_is_anchored_and_dotall() {
        let r = RelabelRegex::new("a.c").unwrap();
        assert!(r.is_match("abc"));
        assert!(r.is_match("a\nc"), "(?s) lets . match newline");
        assert!(!r.is_match("xabc"));
        assert!(!r.is_match("abcx"));
        let alt = RelabelRegex::new("a|b").unwrap();
        assert!(!alt.is_match("ab"), "alternation is anchored as a whole");
        assert!(RelabelRegex::new("(").unwrap_err().starts_with("error parsing regexp"));
    }
}
