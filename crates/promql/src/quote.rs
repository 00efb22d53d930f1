//! Go-compatible string quoting: Prometheus prints strings with Go's
//! `strconv.Quote` and reads them with its own `strutil.Unquote`.

use std::fmt::Write;

/// Is `c` printed as-is by Go's `strconv.Quote`? Go uses `unicode.IsPrint`
/// (letters, marks, numbers, punctuation, symbols and the ASCII space). We
/// approximate it without Unicode tables: control characters, non-ASCII
/// spaces, the common format characters and private-use code points are
/// escaped. Either way the output parses back to the same string.
fn is_print(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c as u32,
        0x00AD | 0x061C | 0x180E | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFFFE | 0xFFFF)
}

fn push_escaped(out: &mut String, c: char, quote: char) {
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        '\\' => out.push_str("\\\\"),
        c if c == quote => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// `strconv.Quote`: a double-quoted string with Go escapes.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"');
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", r)` for a rune; `None` is Go's EOF rune (-1), which
/// Go prints as the replacement character.
pub(crate) fn go_quote_rune(c: Option<char>) -> String {
    let c = c.unwrap_or('\u{FFFD}');
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'');
    out.push('\'');
    out
}

/// `fmt.Sprintf("%#U", r)`: `U+0071 'q'`, or just `U+000A` when not printable.
pub(crate) fn go_rune_u(c: char) -> String {
    if is_print(c) {
        format!("U+{:04X} '{}'", c as u32, c)
    } else {
        format!("U+{:04X}", c as u32)
    }
}

/// Go's `%q` on a string truncated to `n` runes (`%.10q`).
pub(crate) fn go_quote_prefix(s: &str, n: usize) -> String {
    let end = s.char_indices().nth(n).map(|(i, _)| i).unwrap_or(s.len());
    go_quote(&s[..end])
}

/// Unquotes a lexed string token: `"..."` and `'...'` with Go escapes, or a
/// raw `` `...` `` string. Escapes producing bytes (`\xNN`, octal) may build
/// invalid UTF-8, which Go accepts but a Rust `String` cannot hold: that is
/// an error here.
pub(crate) fn unquote(s: &str) -> Result<String, String> {
    let mut chars = s.chars();
    let quote = chars.next().ok_or_else(|| "invalid syntax".to_owned())?;
    if s.len() < 2 || !s.ends_with(quote) {
        return Err("invalid syntax".to_owned());
    }
    let body = &s[quote.len_utf8()..s.len() - quote.len_utf8()];
    if quote == '`' {
        if body.contains('`') {
            return Err("invalid syntax".to_owned());
        }
        return Ok(body.to_owned());
    }
    if quote != '"' && quote != '\'' {
        return Err("invalid syntax".to_owned());
    }
    if !body.contains('\\') {
        if body.contains(quote) || body.contains('\n') {
            return Err("invalid syntax".to_owned());
        }
        return Ok(body.to_owned());
    }
    let mut out: Vec<u8> = Vec::with_capacity(body.len());
    let mut it = body.chars().peekable();
    let invalid = || "invalid syntax".to_owned();
    while let Some(c) = it.next() {
        if c == quote || c == '\n' {
            return Err(invalid());
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next().ok_or_else(invalid)?;
        let simple = match e {
            'a' => Some(b'\x07'),
            'b' => Some(b'\x08'),
            'f' => Some(b'\x0c'),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(b'\x0b'),
            '\\' => Some(b'\\'),
            '\'' | '"' if e == quote => Some(e as u8),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        let (n, base, is_byte) = match e {
            '0'..='7' => (3, 8, true),
            'x' => (2, 16, true),
            'u' => (4, 16, false),
            'U' => (8, 16, false),
            _ => return Err(invalid()),
        };
        let mut v: u32 = 0;
        let mut digits = 0;
        if base == 8 {
            v = e.to_digit(8).ok_or_else(invalid)?;
            digits = 1;
        }
        while digits < n {
            let d = it.next().and_then(|c| c.to_digit(base)).ok_or_else(invalid)?;
            v = v * base + d;
            digits += 1;
        }
        if is_byte {
            let b = u8::try_from(v).map_err(|_| invalid())?;
            out.push(b);
        } else {
            let ch = char::from_u32(v).ok_or_else(invalid)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8 in string".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_like_go() {
        assert_eq!(go_quote("a\"b\\c\n\t\x07\x01é"), r#""a\"b\\c\n\t\a\x01é""#);
        assert_eq!(go_quote("\u{200b}"), r#""\u200b""#);
        assert_eq!(go_quote_rune(Some('\'')), r"'\''");
        assert_eq!(go_quote_rune(Some('x')), "'x'");
        assert_eq!(go_rune_u('q'), "U+0071 'q'");
        assert_eq!(go_rune_u('\n'), "U+000A");
        assert_eq!(go_quote_prefix("abcdefghijklmn", 10), r#""abcdefghij""#);
    }

    #[test]
    fn unquote_escapes() {
        assert_eq!(unquote(r#""a\nb""#).unwrap(), "a\nb");
        assert_eq!(unquote(r"'it\'s'").unwrap(), "it's");
        assert_eq!(unquote(r#""\x41\101\u00e9\U0001F600""#).unwrap(), "AAé😀");
        assert_eq!(unquote(r#""\xc3\xa9""#).unwrap(), "é");
        assert!(unquote(r#""\xff""#).is_err());
        assert_eq!(unquote(r"`a\nb`").unwrap(), r"a\nb");
        assert!(unquote(r#""\'""#).is_err());
    }

    #[test]
    fn quote_unquote_roundtrip() {
        for s in ["", "plain", "a\"b", "x\\y", "\u{0}\u{7f}\u{85}\u{a0}", "日本語", "\u{10FFFF}\u{E000}"] {
            assert_eq!(unquote(&go_quote(s)).unwrap(), s, "{s:?}");
        }
    }
}
