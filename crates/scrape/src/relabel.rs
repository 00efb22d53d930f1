//! Relabelling (`model/relabel/relabel.go` semantics).

use ember_config::{Action, RelabelConfig};
use ember_model::{Labels, LabelsBuilder};
use md5::{Digest, Md5};

/// Applies `cfgs` in order. `None` means a rule dropped the label set.
pub fn process(labels: &Labels, cfgs: &[RelabelConfig]) -> Option<Labels> {
    if cfgs.is_empty() {
        return Some(labels.clone());
    }
    let mut lb = LabelsBuilder::from_labels(labels);
    process_builder(&mut lb, cfgs).then(|| lb.build())
}

/// Like [`process`], on a builder the caller owns; false means dropped
/// (the builder's content is then unspecified).
pub fn process_builder(lb: &mut LabelsBuilder, cfgs: &[RelabelConfig]) -> bool {
    cfgs.iter().all(|cfg| relabel(cfg, lb))
}

/// The source label values joined by the separator; absent labels are "".
fn source_value(cfg: &RelabelConfig, lb: &LabelsBuilder) -> String {
    let mut out = String::new();
    for (i, name) in cfg.source_labels.iter().enumerate() {
        if i > 0 {
            out.push_str(&cfg.separator);
        }
        out.push_str(lb.get(name).unwrap_or(""));
    }
    out
}

/// A copy of the current pairs: rules that walk every label must not see
/// their own changes (Prometheus's `Builder.Range` iterates a snapshot).
fn snapshot(lb: &LabelsBuilder) -> Vec<(String, String)> {
    lb.names().map(|n| (n.to_owned(), lb.get(n).unwrap_or("").to_owned())).collect()
}

/// `hashmod`: MD5 of the value, last 8 bytes as a big-endian u64, modulo.
pub fn hash_mod(value: &str, modulus: u64) -> u64 {
    let sum = Md5::digest(value.as_bytes());
    let mut last = [0u8; 8];
    last.copy_from_slice(&sum[8..16]);
    u64::from_be_bytes(last) % modulus.max(1)
}

fn relabel(cfg: &RelabelConfig, lb: &mut LabelsBuilder) -> bool {
    let val = source_value(cfg, lb);
    match cfg.action {
        Action::Drop => {
            if cfg.regex.is_match(&val) {
                return false;
            }
        }
        Action::Keep => {
            if !cfg.regex.is_match(&val) {
                return false;
            }
        }
        Action::DropEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") == val {
                return false;
            }
        }
        Action::KeepEqual => {
            if lb.get(&cfg.target_label).unwrap_or("") != val {
                return false;
            }
        }
        Action::Replace => {
            // Fast path: a constant assignment (or deletion) when nothing
            // needs expanding.
            if val.is_empty()
                && cfg.regex.is_default()
                && !cfg.target_label.contains('$')
                && !cfg.replacement.contains('$')
            {
                lb.set(&cfg.target_label, &cfg.replacement);
                return true;
            }
            let Some(caps) = cfg.regex.captures_regex().captures(&val) else {
                // No match: nothing changes.
                return true;
            };
            let mut target = String::new();
            caps.expand(&cfg.target_label, &mut target);
            // An expansion that yields no usable name is skipped, as in
            // Prometheus (names are UTF-8 validated: only "" is invalid).
            if target.is_empty() {
                return true;
            }
            let mut res = String::new();
            caps.expand(&cfg.replacement, &mut res);
            if res.is_empty() {
                lb.del(&target);
            } else {
                lb.set(&target, &res);
            }
        }
        Action::Lowercase => {
            lb.set(&cfg.target_label, &val.to_lowercase());
        }
        Action::Uppercase => {
            lb.set(&cfg.target_label, &val.to_uppercase());
        }
        Action::HashMod => {
            lb.set(&cfg.target_label, &hash_mod(&val, cfg.modulus).to_string());
        }
        Action::LabelMap => {
            let re = cfg.regex.captures_regex();
            for (name, value) in snapshot(lb) {
                if cfg.regex.is_match(&name) {
                    let new_name = re.replace_all(&name, cfg.replacement.as_str());
                    if !new_name.is_empty() {
                        lb.set(&new_name, &value);
                    }
                }
            }
        }
        Action::LabelDrop => {
            lb.retain(|name, _| !cfg.regex.is_match(name));
        }
        Action::LabelKeep => {
            lb.retain(|name, _| cfg.regex.is_match(name));
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::labels;

    /// Parses one scrape config's relabel rules from YAML, through the real
    /// config parser and its validation.
    fn rules(yaml: &str) -> Vec<RelabelConfig> {
        let indented: String = yaml.lines().map(|l| format!("      {l}\n")).collect();
        let doc = format!("scrape_configs:\n  - job_name: t\n    relabel_configs:\n{indented}");
        ember_config::parse_str(&doc).unwrap().scrape_configs.remove(0).relabel_configs
    }

    fn run(yaml: &str, input: Labels) -> Option<Labels> {
        process(&input, &rules(yaml))
    }

    #[test]
    fn replace_with_captures_and_default_replacement() {
        let out = run("- source_labels: [a]\n  regex: 'f(o+)'\n  target_label: b\n", labels!("a" => "foo"));
        // Default replacement is $1.
        assert_eq!(out, Some(labels!("a" => "foo", "b" => "oo")));
    }

    #[test]
    fn replace_joins_sources_with_separator_and_missing_is_empty() {
        let out = run(
            "- source_labels: [a, missing, c]\n  separator: '|'\n  regex: '(.*)'\n  target_label: joined\n",
            labels!("a" => "x", "c" => "z"),
        );
        assert_eq!(out.unwrap().get("joined"), Some("x||z"));
    }

    #[test]
    fn replace_unmatched_regex_changes_nothing() {
        let input = labels!("a" => "bar", "b" => "keep");
        let out = run(
            "- source_labels: [a]\n  regex: 'foo'\n  target_label: b\n  replacement: new\n",
            input.clone(),
        );
        assert_eq!(out, Some(input));
    }

    #[test]
    fn replace_regex_is_anchored() {
        let input = labels!("a" => "xfoox");
        let out = run(
            "- source_labels: [a]\n  regex: 'foo'\n  target_label: b\n  replacement: hit\n",
            input.clone(),
        );
        assert_eq!(out, Some(input), "a partial match is no match");
    }

    #[test]
    fn replace_empty_result_deletes_target() {
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: b\n  replacement: ''\n",
            labels!("a" => "x", "b" => "old"),
        );
        assert_eq!(out, Some(labels!("a" => "x")));
    }

    #[test]
    fn replace_constant_when_source_empty_sets_or_deletes() {
        let out = run("- target_label: env\n  replacement: prod\n", labels!("a" => "x"));
        assert_eq!(out, Some(labels!("a" => "x", "env" => "prod")));
        let out = run("- target_label: env\n  replacement: ''\n", labels!("env" => "x"));
        assert_eq!(out, Some(Labels::empty()));
    }

    #[test]
    fn replace_named_groups_braces_and_target_expansion() {
        let out = run(
            "- source_labels: [a]\n  regex: '(?P<host>[^:]+):(?P<port>\\d+)'\n  target_label: 'lbl_${port}'\n  replacement: '${host}-$2'\n",
            labels!("a" => "web:8080"),
        );
        assert_eq!(out.unwrap().get("lbl_8080"), Some("web-8080"));
    }

    #[test]
    fn replace_dollar_name_takes_longest_word_like_go() {
        // `$1x` names group "1x", which does not exist: it expands to "".
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: b\n  replacement: '$1x'\n",
            labels!("a" => "v", "b" => "old"),
        );
        assert_eq!(out, Some(labels!("a" => "v")), "empty result deletes b");
        let out = run(
            "- source_labels: [a]\n  regex: '(.*)'\n  target_label: b\n  replacement: '${1}x$$'\n",
            labels!("a" => "v"),
        );
        assert_eq!(out.unwrap().get("b"), Some("vx$"));
    }

    #[test]
    fn replace_target_expanding_to_empty_is_skipped() {
        let input = labels!("a" => "v");
        let out = run("- source_labels: [a]\n  regex: '(.*)'\n  target_label: '$2'\n", input.clone());
        assert_eq!(out, Some(input));
    }

    #[test]
    fn keep_and_drop() {
        let keep = "- source_labels: [env]\n  action: keep\n  regex: prod|staging\n";
        assert!(run(keep, labels!("env" => "prod")).is_some());
        assert!(run(keep, labels!("env" => "dev")).is_none());
        assert!(run(keep, labels!("x" => "y")).is_none(), "missing label is the empty string");
        let drop = "- source_labels: [env]\n  action: drop\n  regex: dev\n";
        assert!(run(drop, labels!("env" => "dev")).is_none());
        assert!(run(drop, labels!("env" => "development")).is_some(), "anchored");
        // An empty regex matches only the empty value.
        let drop_empty = "- source_labels: [env]\n  action: drop\n  regex: ''\n";
        assert!(run(drop_empty, labels!("a" => "b")).is_none());
        assert!(run(drop_empty, labels!("env" => "x")).is_some());
    }

    #[test]
    fn keepequal_and_dropequal() {
        let ke = "- source_labels: [a]\n  action: keepequal\n  target_label: b\n";
        assert!(run(ke, labels!("a" => "1", "b" => "1")).is_some());
        assert!(run(ke, labels!("a" => "1", "b" => "2")).is_none());
        assert!(run(ke, labels!("x" => "1")).is_some(), "both missing: equal empty strings");
        let de = "- source_labels: [a]\n  action: dropequal\n  target_label: b\n";
        assert!(run(de, labels!("a" => "1", "b" => "1")).is_none());
        assert!(run(de, labels!("a" => "1", "b" => "2")).is_some());
    }

    #[test]
    fn hashmod_matches_prometheus_md5_scheme() {
        // Reference values: MD5 of the input, last 8 bytes big-endian, mod.
        // md5("") = d41d8cd98f00b204 e9800998ecf8427e
        assert_eq!(hash_mod("", 1 << 63), 0xe9800998ecf8427e % (1 << 63));
        // md5("foo") = acbd18db4cc2f85c edef654fccc4a4d8
        assert_eq!(hash_mod("foo", 1 << 63), 0xedef654fccc4a4d8 % (1 << 63));
        assert_eq!(hash_mod("foo", 10), 0xedef654fccc4a4d8_u64 % 10);
        let out = run(
            "- source_labels: [a]\n  action: hashmod\n  modulus: 1000\n  target_label: shard\n",
            labels!("a" => "foo"),
        );
        assert_eq!(out.unwrap().get("shard"), Some((0xedef654fccc4a4d8_u64 % 1000).to_string().as_str()));
    }

    #[test]
    fn hashmod_uses_joined_sources() {
        let out = run(
            "- source_labels: [a, b]\n  action: hashmod\n  modulus: 1000000\n  target_label: h\n",
            labels!("a" => "fo", "b" => "o"),
        );
        // "fo;o" is hashed, not "foo".
        assert_eq!(out.unwrap().get("h"), Some(hash_mod("fo;o", 1_000_000).to_string().as_str()));
        assert_ne!(hash_mod("fo;o", 1_000_000), hash_mod("foo", 1_000_000));
    }

    #[test]
    fn labelmap_copies_matching_names() {
        let out = run(
            "- action: labelmap\n  regex: '__meta_kubernetes_(.+)'\n",
            labels!("__meta_kubernetes_pod" => "p1", "__meta_other" => "x", "job" => "j"),
        );
        assert_eq!(
            out,
            Some(
                labels!("__meta_kubernetes_pod" => "p1", "__meta_other" => "x", "job" => "j", "pod" => "p1")
            )
        );
        let out =
            run("- action: labelmap\n  regex: '(a)(b)'\n  replacement: '${2}_$1'\n", labels!("ab" => "v"));
        assert_eq!(out.unwrap().get("b_a"), Some("v"));
    }

    #[test]
    fn labelmap_sees_a_snapshot() {
        // a→b and b→c in one rule: c gets b's *original* value.
        let out = run(
            "- action: labelmap\n  regex: '(a|b)'\n  replacement: 'x$1'\n",
            labels!("a" => "1", "b" => "2"),
        );
        assert_eq!(out, Some(labels!("a" => "1", "b" => "2", "xa" => "1", "xb" => "2")));
    }

    #[test]
    fn labeldrop_and_labelkeep() {
        let input = labels!("__name__" => "up", "a" => "1", "ab" => "2", "b" => "3");
        let out = run("- action: labeldrop\n  regex: 'a.*'\n", input.clone());
        assert_eq!(out, Some(labels!("__name__" => "up", "b" => "3")));
        let out = run("- action: labelkeep\n  regex: '__name__|a'\n", input);
        assert_eq!(out, Some(labels!("__name__" => "up", "a" => "1")));
    }

    #[test]
    fn lowercase_and_uppercase() {
        let out = run(
            "- source_labels: [a]\n  action: lowercase\n  target_label: lo\n- source_labels: [a]\n  action: uppercase\n  target_label: up\n",
            labels!("a" => "MiXeD"),
        );
        let out = out.unwrap();
        assert_eq!(out.get("lo"), Some("mixed"));
        assert_eq!(out.get("up"), Some("MIXED"));
        // An empty source deletes the target.
        let out = run("- source_labels: [x]\n  action: lowercase\n  target_label: a\n", labels!("a" => "v"));
        assert_eq!(out, Some(Labels::empty()));
    }

    #[test]
    fn rules_apply_in_order_and_stop_at_drop() {
        let yaml = "- source_labels: [a]\n  target_label: b\n- source_labels: [b]\n  action: drop\n  regex: x\n- target_label: never\n  replacement: set\n";
        assert!(run(yaml, labels!("a" => "x")).is_none());
        let out = run(yaml, labels!("a" => "y")).unwrap();
        assert_eq!(out.get("b"), Some("y"));
        assert_eq!(out.get("never"), Some("set"));
    }

    #[test]
    fn no_rules_returns_input() {
        let l = labels!("a" => "1");
        assert_eq!(process(&l, &[]), Some(l));
    }
}
