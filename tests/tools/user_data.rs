//! Reading rendered user-data the way cloud-init does: gzip detection,
//! `write_files` decoding, and the shell scripts `runcmd`/`bootcmd` become.

use std::fmt;
use std::io::Read;
use std::path::Path;

use serde_yaml::Value;

use super::support::{append_file, map_into, set_mode, write_file};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Bake,
    Boot,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Bake => "bake",
            Phase::Boot => "boot",
        })
    }
}

/// One decoded `write_files` entry.
#[derive(Clone, Debug)]
pub struct WrittenFile {
    pub phase: Phase,
    pub path: String,
    pub content: Vec<u8>,
    /// cloud-init's default is 0644.
    pub mode: u32,
    pub append: bool,
}

impl WrittenFile {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.content).into_owned()
    }
}

/// The document as text; gzip (magic 1f 8b) is undone first, as cloud-init
/// does with compressed user-data.
pub fn decode_document(bytes: &[u8]) -> Result<String, String> {
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        gunzip(bytes)?
    } else {
        bytes.to_vec()
    };
    String::from_utf8(bytes).map_err(|e| format!("user-data is not UTF-8: {e}"))
}

fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| format!("gzip: {e}"))?;
    Ok(out)
}

pub fn parse(text: &str) -> Result<Value, String> {
    serde_yaml::from_str(text).map_err(|e| format!("not YAML: {e}"))
}

/// Every `write_files` entry, decoded.
pub fn write_files(config: &Value, phase: Phase) -> Result<Vec<WrittenFile>, String> {
    let Some(entries) = config.get("write_files") else {
        return Ok(Vec::new());
    };
    let entries = entries.as_sequence().ok_or("write_files is not a list")?;
    entries
        .iter()
        .enumerate()
        .map(|(i, entry)| written_file(entry, phase).map_err(|e| format!("write_files[{i}]: {e}")))
        .collect()
}

fn written_file(entry: &Value, phase: Phase) -> Result<WrittenFile, String> {
    let path = entry
        .get("path")
        .and_then(Value::as_str)
        .ok_or("no string `path`")?
        .to_string();
    let content = entry.get("content").and_then(Value::as_str).unwrap_or("");
    let encoding = entry
        .get("encoding")
        .and_then(Value::as_str)
        .unwrap_or("text/plain");
    let content = decode_content(content, encoding).map_err(|e| format!("{path}: {e}"))?;
    let mode = match entry.get("permissions") {
        None => 0o644,
        Some(Value::String(s)) => parse_mode(s).map_err(|e| format!("{path}: {e}"))?,
        Some(other) => return Err(format!("{path}: permissions {other:?} is not a string")),
    };
    let append = entry
        .get("append")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(WrittenFile {
        phase,
        path,
        content,
        mode,
        append,
    })
}

fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim_start_matches("0o");
    u32::from_str_radix(digits, 8).map_err(|_| format!("permissions `{text}` is not octal"))
}

/// The encodings cloud-init 22.4 accepts (cc_write_files canonicalize).
fn decode_content(content: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding.to_ascii_lowercase().as_str() {
        "text/plain" => Ok(content.as_bytes().to_vec()),
        "b64" | "base64" => base64_decode(content),
        "gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64" => gunzip(&base64_decode(content)?),
        "gz" | "gzip" => gunzip(content.as_bytes()),
        other => Err(format!("unknown encoding `{other}`")),
    }
}

/// Standard base64 with padding; whitespace (line breaks) is ignored, as
/// Python's decoder used by cloud-init does.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if digits.len() % 4 != 0 {
        return Err("base64 length is not a multiple of 4".into());
    }
    let mut out = Vec::with_capacity(digits.len() / 4 * 3);
    for chunk in digits.chunks(4) {
        let padding = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        let mut bits = 0u32;
        for &b in &chunk[..4 - padding] {
            bits = bits << 6 | base64_value(b)?;
        }
        bits <<= 6 * padding as u32;
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..4 - padding]);
    }
    Ok(out)
}

fn base64_value(b: u8) -> Result<u32, String> {
    let value = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return Err(format!("invalid base64 character {:?}", b as char)),
    };
    Ok(u32::from(value))
}

/// Paths that one document writes more than once (cloud-init would write
/// both, the last one winning silently).
pub fn duplicate_paths(files: &[WrittenFile]) -> Vec<String> {
    let mut seen = std::collections::BTreeSet::new();
    let mut duplicates: Vec<String> = files
        .iter()
        .filter(|f| !f.append && !seen.insert(f.path.as_str()))
        .map(|f| f.path.clone())
        .collect();
    duplicates.dedup();
    duplicates
}

/// Writes files into `root` in order (a later phase overwrites an earlier
/// one, `append: true` appends), with their modes.
pub fn materialize(root: &Path, files: &[&WrittenFile]) -> Result<(), String> {
    for file in files {
        let target = map_into(root, &file.path)?;
        if file.append {
            append_file(&target, &file.content);
        } else {
            write_file(&target, &file.content);
        }
        set_mode(&target, file.mode);
    }
    Ok(())
}

/// Names from the `packages` module (`name` or `[name, version]`).
pub fn packages(config: &Value) -> Vec<String> {
    let Some(list) = config.get("packages").and_then(Value::as_sequence) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|p| match p {
            Value::String(name) => Some(name.clone()),
            Value::Sequence(pair) => pair.first().and_then(Value::as_str).map(String::from),
            _ => None,
        })
        .collect()
}

/// The `/bin/sh` script cloud-init makes of `runcmd` or `bootcmd`
/// (util.shellify): strings verbatim, lists shell-quoted and joined.
pub fn shellify(config: &Value, key: &str) -> Result<Option<String>, String> {
    let Some(entries) = config.get(key) else {
        return Ok(None);
    };
    let entries = entries
        .as_sequence()
        .ok_or(format!("{key} is not a list"))?;
    let mut script = String::from("#!/bin/sh\n");
    for (i, entry) in entries.iter().enumerate() {
        let line = match entry {
            Value::String(s) => s.clone(),
            Value::Sequence(args) => args
                .iter()
                .map(|a| scalar_text(a).map(|s| shell_quote(&s)))
                .collect::<Option<Vec<_>>>()
                .ok_or(format!("{key}[{i}] has a non-scalar argument"))?
                .join(" "),
            _ => return Err(format!("{key}[{i}] is neither a string nor a list")),
        };
        script.push_str(&line);
        script.push('\n');
    }
    Ok(Some(script))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn shell_quote(arg: &str) -> String {
    let safe = !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c));
    if safe {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[test]
fn gzip_documents_are_detected_by_their_magic() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"#cloud-config\n{}\n").unwrap();
    let bytes = gz.finish().unwrap();
    assert_eq!(decode_document(&bytes).unwrap(), "#cloud-config\n{}\n");
    assert_eq!(
        decode_document(b"#cloud-config\n").unwrap(),
        "#cloud-config\n"
    );
}

#[test]
fn base64_decodes_with_padding_and_line_breaks() {
    assert_eq!(base64_decode("aGVsbG8=").unwrap(), b"hello");
    assert_eq!(base64_decode("aGVs\nbG8h").unwrap(), b"hello!");
    assert_eq!(base64_decode("aA==").unwrap(), b"h");
    assert!(base64_decode("aGVsbG8").is_err());
    assert!(base64_decode("aGV*bG8h").is_err());
}

#[test]
fn write_files_decodes_every_encoding_and_keeps_modes() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"zipped").unwrap();
    let gz_b64 = base64_encode_for_test(&gz.finish().unwrap());
    let doc = parse(&format!(
        "write_files:\n\
         - {{path: /a, content: plain}}\n\
         - {{path: /b, content: aGVsbG8=, encoding: b64, permissions: '0755'}}\n\
         - {{path: /c, content: '{gz_b64}', encoding: gz+b64}}\n"
    ))
    .unwrap();
    let files = write_files(&doc, Phase::Boot).unwrap();
    let contents: Vec<&[u8]> = files.iter().map(|f| f.content.as_slice()).collect();
    assert_eq!(contents, [&b"plain"[..], b"hello", b"zipped"]);
    assert_eq!(files[0].mode, 0o644);
    assert_eq!(files[1].mode, 0o755);
}

#[test]
fn write_files_rejects_what_cloud_init_would_not_write() {
    let integer_mode = parse("write_files: [{path: /a, content: x, permissions: 644}]").unwrap();
    assert!(write_files(&integer_mode, Phase::Bake).is_err());
    let unknown = parse("write_files: [{path: /a, content: x, encoding: rot13}]").unwrap();
    assert!(write_files(&unknown, Phase::Bake).is_err());
    let relative = parse("write_files: [{path: etc/a, content: x}]").unwrap();
    let files = write_files(&relative, Phase::Bake).unwrap();
    let root = tempfile::tempdir().unwrap();
    assert!(materialize(root.path(), &files.iter().collect::<Vec<_>>()).is_err());
}

#[test]
fn duplicate_paths_are_found_but_appends_are_not_duplicates() {
    let doc = parse(
        "write_files:\n\
         - {path: /a, content: x}\n\
         - {path: /a, content: y}\n\
         - {path: /b, content: x}\n\
         - {path: /b, content: y, append: true}\n",
    )
    .unwrap();
    let files = write_files(&doc, Phase::Bake).unwrap();
    assert_eq!(duplicate_paths(&files), ["/a"]);
}

#[test]
fn shellify_quotes_list_commands_like_cloud_init() {
    let doc = parse("runcmd: ['echo a && b', [ls, -l, \"it's\"]]").unwrap();
    let script = shellify(&doc, "runcmd").unwrap().unwrap();
    assert_eq!(script, "#!/bin/sh\necho a && b\nls -l 'it'\\''s'\n");
}

#[cfg(test)]
fn base64_encode_for_test(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let mut buf = [0u8; 3];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
