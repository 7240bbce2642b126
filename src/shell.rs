//! The one rule for every value that reaches a shell: it is quoted by
//! [`quote`], never interpolated as it is.
//!
//! [`quote`] turns any string into one POSIX shell word that expands to
//! exactly that string: words made only of characters no shell treats
//! specially stay bare (`nginx`, `/etc/x`, `9090`), everything else is put
//! in single quotes, inside which nothing is special. A string holding a
//! single quote goes in double quotes instead, with `\`, `"`, `$` and `` ` ``
//! escaped: the usual `'\''` would do for sh, but systemd's
//! `EnvironmentFile=` parser (env-file.c), which reads some of the same
//! files (`/etc/default/*`, grafana.env), takes a quote after `\'`
//! literally. Both forms read alike in sh and in systemd.
//!
//! Layer templates use the same function as the tera filter
//! [`FILTER`] (`{{ fqdn | shell_quote }}`); ingot's own generated scripts
//! (health checks, the seal, runcmd) call [`quote`] directly.
//!
//! ```
//! use ingot::shell::quote;
//! assert_eq!(quote("nginx"), "nginx");
//! assert_eq!(quote("o'neil@example.com"), r#""o'neil@example.com""#);
//! assert_eq!(quote("$(touch /tmp/x)"), "'$(touch /tmp/x)'");
//! assert_eq!(quote(""), "''");
//! ```

use std::collections::HashMap;

/// The tera filter's name: `{{ value | shell_quote }}`.
pub const FILTER: &str = "shell_quote";

/// One shell word that expands to exactly `s`.
pub fn quote(s: &str) -> String {
    // `=` is kept out of the bare set: a bare `a=b` first on a line would be
    // an assignment, not a word.
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+,".contains(c))
    {
        return s.to_string();
    }
    if !s.contains('\'') {
        return format!("'{s}'");
    }
    let mut out = String::with_capacity(s.len() + 8);
    out.push('"');
    for c in s.chars() {
        if matches!(c, '\\' | '"' | '$' | '`') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Several words, each quoted, separated by spaces.
pub fn quote_all<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|s| quote(s.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text for a `#` comment: control characters (a newline would end the
/// comment and start a command) become `?`.
pub fn comment(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The tera filter: strings, numbers and booleans become one quoted word
/// (a list becomes its items, each quoted, separated by spaces); null is
/// the empty word `''`.
pub fn tera_filter(
    value: &tera::Value,
    _args: &HashMap<String, tera::Value>,
) -> tera::Result<tera::Value> {
    use tera::Value;
    let word = |v: &Value| -> tera::Result<String> {
        match v {
            Value::String(s) => Ok(quote(s)),
            Value::Null => Ok(quote("")),
            Value::Bool(_) | Value::Number(_) => Ok(quote(&v.to_string())),
            _ => Err(tera::Error::msg(format!(
                "`{FILTER}` quotes strings, numbers, booleans and lists of them"
            ))),
        }
    };
    let out = match value {
        Value::Array(items) => items
            .iter()
            .map(word)
            .collect::<tera::Result<Vec<_>>>()?
            .join(" "),
        other => word(other)?,
    };
    Ok(Value::String(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("nginx"), "nginx");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r#""it's""#);
        assert_eq!(quote("it's $x"), r#""it's \$x""#);
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a=b"), "'a=b'");
        assert_eq!(quote("~root"), "'~root'");
        assert_eq!(quote("x\ny"), "'x\ny'");
    }

    /// The real sh reads every quoted word back as the original string.
    #[test]
    fn sh_reads_back_what_was_quoted() {
        let values = [
            "plain",
            "o'neil@example.com",
            "1.2.3.4'; touch /tmp/x; '",
            "$(id) `id` ${HOME} $HOME",
            "a\nb\tc",
            "'''",
            "\\'\\",
            "a'b\"c$d`e\\f\ng",
            "*",
            "-n",
            "",
            "ünï cödé",
        ];
        let mut script = String::new();
        for v in values {
            script.push_str(&format!("printf '%s\\0' {}\n", quote(v)));
        }
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        assert!(out.status.success());
        let got: Vec<String> = out
            .stdout
            .split(|b| *b == 0)
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect();
        assert_eq!(&got[..values.len()], values);
    }

    #[test]
    fn the_filter_quotes_scalars_and_lists() {
        let f = |v: tera::Value| tera_filter(&v, &HashMap::new()).unwrap();
        assert_eq!(f(serde_json::json!("a b")), serde_json::json!("'a b'"));
        assert_eq!(f(serde_json::json!(9090)), serde_json::json!("9090"));
        assert_eq!(f(serde_json::json!(true)), serde_json::json!("true"));
        assert_eq!(f(serde_json::json!(null)), serde_json::json!("''"));
        assert_eq!(
            f(serde_json::json!(["a", "b c"])),
            serde_json::json!("a 'b c'")
        );
        assert!(tera_filter(&serde_json::json!({"a": 1}), &HashMap::new()).is_err());
    }
}
