//! Reading a guest's serial console log as it grows, line by line.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub struct SerialLog {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl SerialLog {
    pub fn new(path: &Path) -> Self {
        SerialLog {
            path: path.to_path_buf(),
            offset: 0,
            partial: Vec::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The complete lines written since the last call, without carriage
    /// returns and terminal escapes. A missing file is no lines yet.
    pub fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return Vec::new();
        };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut buf = Vec::new();
        let n = f.read_to_end(&mut buf).unwrap_or(0);
        self.offset += n as u64;
        self.partial.extend_from_slice(&buf);
        let mut lines = Vec::new();
        while let Some(i) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            lines.push(crate::protocol::clean(&line));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_arrive_whole_and_clean() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("serial.log");
        let mut log = SerialLog::new(&p);
        assert!(log.new_lines().is_empty());
        std::fs::write(
            &p,
            "boot\r\n\u{1b}[0;32m  OK  \u{1b}[0m] Started\r\nINGOT-BA",
        )
        .unwrap();
        assert_eq!(log.new_lines(), ["boot", "  OK  ] Started"]);
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, b"KE-OK web sha256:1\n").unwrap();
        assert_eq!(log.new_lines(), ["INGOT-BAKE-OK web sha256:1"]);
    }
}
