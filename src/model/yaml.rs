//! A second reading of a YAML file, as a stream of parser events: where
//! every key and item is (for messages that name a line), and whether a
//! mapping repeats a key.
//!
//! serde_yaml reads a repeated key of a map silently, the last one
//! winning; the events show both. The parser is libyaml (the
//! `unsafe-libyaml` translation serde_yaml itself runs on), so both
//! readings agree on every document and on every line and column; its
//! interface is C's, hence the `unsafe` blocks below, kept to the four
//! calls serde_yaml makes the same way (initialize, set input, parse,
//! delete), each with the reason it is sound.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use unsafe_libyaml as unsafe_yaml;

/// 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// Where each node of a document starts, by path: `files[2]`,
/// `files[2].path`, `params.fqdn`, `packages.all[0]` (the paths serde_yaml
/// prints in its own errors).
#[derive(Debug, Clone, Default)]
pub struct Positions(BTreeMap<String, Pos>);

impl Positions {
    pub fn get(&self, path: &str) -> Option<Pos> {
        self.0.get(path).copied()
    }

    /// The line of `path`, else of the nearest enclosing node that has one.
    pub fn line(&self, path: &str) -> Option<usize> {
        let mut p = path;
        loop {
            if let Some(pos) = self.0.get(p) {
                return Some(pos.line);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

/// A key given twice in one mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// The mapping's path (empty for the top level).
    pub within: String,
    pub key: String,
    pub first: Pos,
    pub second: Pos,
}

#[derive(Debug)]
pub enum ScanError {
    Duplicate(Duplicate),
    /// libyaml refused the text (serde_yaml, which ran first, would have).
    Syntax {
        pos: Pos,
        message: String,
    },
}

enum Frame {
    Map {
        path: String,
        keys: BTreeMap<String, Pos>,
        state: MapState,
    },
    Seq {
        path: String,
        next: usize,
    },
}

enum MapState {
    Key,
    /// A key (a mapping or list used as one) is being read.
    InKey(String),
    Value(String),
    /// A value (a mapping or list) is being read.
    InValue,
}

/// Owns the parser; deleting it frees what libyaml allocated.
struct Parser(Box<MaybeUninit<unsafe_yaml::yaml_parser_t>>);

impl Drop for Parser {
    fn drop(&mut self) {
        // SAFETY: the parser was initialized by `scan` before a `Parser`
        // exists, and is deleted exactly once, here.
        unsafe { unsafe_yaml::yaml_parser_delete(self.0.as_mut_ptr()) }
    }
}

fn pos(mark: unsafe_yaml::yaml_mark_t) -> Pos {
    Pos {
        line: mark.line as usize + 1,
        column: mark.column as usize + 1,
    }
}

pub fn scan(input: &[u8]) -> Result<Positions, ScanError> {
    let mut raw = Box::new(MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit());
    // SAFETY: `raw` is a valid, writable allocation of a parser;
    // initialize fills it in. On failure nothing was allocated, so no
    // delete is owed.
    if unsafe { unsafe_yaml::yaml_parser_initialize(raw.as_mut_ptr()) }.fail {
        return Err(ScanError::Syntax {
            pos: Pos { line: 1, column: 1 },
            message: "the YAML parser could not start (out of memory)".into(),
        });
    }
    let mut parser = Parser(raw);
    let p = parser.0.as_mut_ptr();
    // SAFETY: the parser is initialized; `input` outlives the parser,
    // which is dropped at the end of this function, and is never moved.
    unsafe {
        unsafe_yaml::yaml_parser_set_encoding(p, unsafe_yaml::YAML_UTF8_ENCODING);
        unsafe_yaml::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as _);
    }

    let mut positions = BTreeMap::new();
    let mut stack: Vec<Frame> = Vec::new();
    loop {
        let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
        // SAFETY: the parser is initialized with its input; `event` is
        // writable, and initialized by parse when it succeeds.
        if unsafe { unsafe_yaml::yaml_parser_parse(p, event.as_mut_ptr()) }.fail {
            // SAFETY: after a failure the parser's problem fields hold a
            // static C string (or null) and a mark; the parser is
            // initialized and nothing else uses it meanwhile.
            let (message, mark) = unsafe {
                let parser: &unsafe_yaml::yaml_parser_t = &*p;
                let problem = parser.problem;
                let text = if problem.is_null() {
                    "invalid YAML".to_string()
                } else {
                    std::ffi::CStr::from_ptr(problem.cast())
                        .to_string_lossy()
                        .into_owned()
                };
                (text, parser.problem_mark)
            };
            return Err(ScanError::Syntax {
                pos: pos(mark),
                message,
            });
        }
        // SAFETY: parse succeeded, so the event is initialized.
        let mut event = unsafe { event.assume_init() };
        let kind = event.type_;
        let start = pos(event.start_mark);
        let scalar = if kind == unsafe_yaml::YAML_SCALAR_EVENT {
            // SAFETY: a scalar event's data is the scalar variant, whose
            // value points at `length` bytes owned by the event.
            let bytes = unsafe {
                let s = event.data.scalar;
                if s.value.is_null() {
                    &[][..]
                } else {
                    std::slice::from_raw_parts(s.value, s.length as usize)
                }
            };
            Some(String::from_utf8_lossy(bytes).into_owned())
        } else {
            None
        };
        // SAFETY: the event came from parse and is deleted once; nothing
        // borrowed from it (the scalar was copied) outlives this.
        unsafe { unsafe_yaml::yaml_event_delete(&mut event) };

        match kind {
            unsafe_yaml::YAML_STREAM_END_EVENT => break,
            unsafe_yaml::YAML_SCALAR_EVENT | unsafe_yaml::YAML_ALIAS_EVENT => {
                let key = is_key(&stack);
                node(&mut stack, &mut positions, start, scalar, false)?;
                if !key {
                    done(&mut stack);
                }
            }
            unsafe_yaml::YAML_MAPPING_START_EVENT | unsafe_yaml::YAML_SEQUENCE_START_EVENT => {
                let path = node(&mut stack, &mut positions, start, None, true)?;
                stack.push(if kind == unsafe_yaml::YAML_MAPPING_START_EVENT {
                    Frame::Map {
                        path,
                        keys: BTreeMap::new(),
                        state: MapState::Key,
                    }
                } else {
                    Frame::Seq { path, next: 0 }
                });
            }
            unsafe_yaml::YAML_MAPPING_END_EVENT | unsafe_yaml::YAML_SEQUENCE_END_EVENT => {
                stack.pop();
                done(&mut stack);
            }
            _ => {}
        }
    }
    Ok(Positions(positions))
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

fn is_key(stack: &[Frame]) -> bool {
    matches!(
        stack.last(),
        Some(Frame::Map {
            state: MapState::Key,
            ..
        })
    )
}

/// A node starts: records where, and returns its path. A key is checked
/// against the mapping's earlier keys. `collection`: the node is a
/// mapping or list, which ends with its own event.
fn node(
    stack: &mut [Frame],
    positions: &mut BTreeMap<String, Pos>,
    start: Pos,
    scalar: Option<String>,
    collection: bool,
) -> Result<String, ScanError> {
    let path = match stack.last_mut() {
        None => String::new(),
        Some(Frame::Seq { path, next }) => format!("{path}[{next}]"),
        Some(Frame::Map { path, keys, state }) => match state {
            MapState::Value(key) => {
                let full = join(path, key);
                if collection {
                    *state = MapState::InValue;
                }
                full
            }
            MapState::Key => {
                // Keys that are mappings or lists are never valid in ingot's
                // files: they get a name of their own, and no record.
                let Some(key) = scalar else {
                    let placeholder = format!("?{}:{}", start.line, start.column);
                    *state = MapState::InKey(placeholder.clone());
                    return Ok(join(path, &placeholder));
                };
                if let Some(first) = keys.get(&key) {
                    return Err(ScanError::Duplicate(Duplicate {
                        within: path.clone(),
                        key,
                        first: *first,
                        second: start,
                    }));
                }
                keys.insert(key.clone(), start);
                let full = join(path, &key);
                positions.entry(full.clone()).or_insert(start);
                *state = MapState::Value(key);
                return Ok(full);
            }
            // Not reached: a key or value in progress is the frame above.
            MapState::InKey(_) | MapState::InValue => join(path, "?"),
        },
    };
    positions.entry(path.clone()).or_insert(start);
    Ok(path)
}

/// A value ended (or a key that was a collection): the enclosing
/// collection moves on.
fn done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Seq { next, .. }) => *next += 1,
        Some(Frame::Map { state, .. }) => {
            *state = match std::mem::replace(state, MapState::Key) {
                MapState::InKey(k) => MapState::Value(k),
                _ => MapState::Key,
            }
        }
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dup(text: &str) -> Duplicate {
        match scan(text.as_bytes()) {
            Err(ScanError::Duplicate(d)) => d,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn repeated_keys_are_found_where_they_are() {
        let d = dup("a: 1\nb:\n  x: 1\n  y: 2\n  x: 3\n");
        assert_eq!(d.within, "b");
        assert_eq!(d.key, "x");
        assert_eq!(d.first, Pos { line: 3, column: 3 });
        assert_eq!(d.second, Pos { line: 5, column: 3 });
        let d = dup("a: 1\na: 2\n");
        assert_eq!((d.within.as_str(), d.second.line), ("", 2));
        let d = dup("l: [{x: 1}, {x: 1, 'x': 2}]\n");
        assert_eq!(d.within, "l[1]");
        // The same key in two mappings is no repeat.
        assert!(scan(b"a: {x: 1}\nb: {x: 1}\nc: [x, x]\n").is_ok());
    }

    #[test]
    fn positions_of_keys_and_items() {
        let p = scan(
            b"files:\n  - path: /a\n    mode: x\n  - {path: /b}\nparams:\n  fqdn: {type: fqdn}\n",
        )
        .unwrap();
        assert_eq!(p.get("files").unwrap().line, 1);
        assert_eq!(p.get("files[0]").unwrap().line, 2);
        assert_eq!(p.get("files[0].mode").unwrap().line, 3);
        assert_eq!(p.get("files[1]").unwrap(), Pos { line: 4, column: 5 });
        assert_eq!(p.get("files[1].path").unwrap(), Pos { line: 4, column: 6 });
        assert_eq!(p.get("params.fqdn.type").unwrap().line, 6);
        assert_eq!(p.line("files[0].mode.x"), Some(3));
        assert_eq!(p.line("nothing"), None);
    }
}
