//! Container logs: one line per record, `TIME STREAM TAG MESSAGE`, the CRI format that
//! conmon writes (`2026-01-02T03:04:05.123456789Z stdout F hello`). `F` ends a line,
//! `P` is a piece of a longer one. The file rotates at `max_size` into `.1`, `.2`, ...
//! (oldest highest), keeping `max_file` files in all.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// Which output a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// One line of output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub time: SystemTime,
    pub stream: Stream,
    /// Without the trailing newline.
    pub message: String,
}

impl LogLine {
    /// As `berth logs` prints it: the message, with `timestamps` prefixed by the time.
    pub fn display(&self, timestamps: bool) -> String {
        if timestamps {
            format!(
                "{} {}",
                humantime::format_rfc3339_nanos(self.time),
                self.message
            )
        } else {
            self.message.clone()
        }
    }
}

/// Longest piece written as one record; longer lines are split into `P` records.
const MAX_RECORD: usize = 16 * 1024;

/// Appends records to the log file and rotates it.
pub struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_file: u32,
    /// An unfinished line per stream.
    partial: [Vec<u8>; 2],
}

impl LogWriter {
    pub fn open(
        path: &Path,
        max_size: Option<u64>,
        max_file: Option<u32>,
    ) -> std::io::Result<Self> {
        let file = File::options().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_file: max_file.unwrap_or(1).max(1),
            partial: [vec![], vec![]],
        })
    }

    /// Takes a chunk of a stream's output; writes each complete line as a record.
    /// Returns the records written (for attached clients).
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<Vec<u8>> {
        let idx = stream as usize;
        let mut out = Vec::new();
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        let now = SystemTime::now();
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            self.record(&mut out, now, stream, &buf[start..start + nl], true);
            start += nl + 1;
        }
        let mut rest = buf.split_off(start);
        while rest.len() >= MAX_RECORD {
            let tail = rest.split_off(MAX_RECORD);
            self.record(&mut out, now, stream, &rest, false);
            rest = tail;
        }
        self.partial[idx] = rest;
        self.emit(&out)?;
        Ok(out)
    }

    /// Writes what is left of unfinished lines (the container exited).
    pub fn flush_partial(&mut self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let now = SystemTime::now();
        for s in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(&mut self.partial[s as usize]);
            if !rest.is_empty() {
                self.record(&mut out, now, s, &rest, true);
            }
        }
        self.emit(&out)?;
        Ok(out)
    }

    fn record(&self, out: &mut Vec<u8>, t: SystemTime, s: Stream, msg: &[u8], full: bool) {
        let _ = write!(
            out,
            "{} {} {} ",
            humantime::format_rfc3339_nanos(t),
            s.name(),
            if full { 'F' } else { 'P' }
        );
        out.extend_from_slice(msg);
        out.push(b'\n');
    }

    fn emit(&mut self, data: &[u8]) -> std::io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let Some(max) = self.max_size else {
            self.file.write_all(data)?;
            self.size += data.len() as u64;
            return Ok(());
        };
        // Record by record, so no file grows past max_size (unless one record does).
        let next_end = |from: usize| {
            data[from..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(data.len(), |p| from + p + 1)
        };
        let mut start = 0;
        while start < data.len() {
            let mut end = start;
            while end < data.len() {
                let next = next_end(end);
                if self.size + (next - start) as u64 > max {
                    break;
                }
                end = next;
            }
            if end == start {
                if self.size > 0 {
                    self.rotate()?;
                    continue;
                }
                // One record larger than max_size gets a file of its own.
                end = next_end(start);
            }
            self.file.write_all(&data[start..end])?;
            self.size += (end - start) as u64;
            start = end;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.max_file <= 1 {
            // Only one file: start it again.
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        for n in (1..self.max_file - 1).rev() {
            let _ = std::fs::rename(numbered(&self.path, n), numbered(&self.path, n + 1));
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.file = File::options().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Log files of a container, oldest first.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut out = vec![];
    let mut n = 1;
    while numbered(path, n).exists() {
        out.push(numbered(path, n));
        n += 1;
    }
    out.reverse();
    if path.exists() {
        out.push(path.to_path_buf());
    }
    out
}

/// Parses one record; None for a line that is not one (a torn write).
pub fn parse_record(line: &str) -> Option<(SystemTime, Stream, bool, &str)> {
    let mut it = line.splitn(4, ' ');
    let t = humantime::parse_rfc3339(it.next()?).ok()?;
    let s = match it.next()? {
        "stdout" => Stream::Stdout,
        "stderr" => Stream::Stderr,
        _ => return None,
    };
    let full = match it.next()? {
        "F" => true,
        "P" => false,
        _ => return None,
    };
    Some((t, s, full, it.next().unwrap_or("")))
}

/// Whether a record line ends a log line (tag `F`).
fn is_full(line: &[u8]) -> bool {
    let mut it = line.splitn(4, |&b| b == b' ');
    it.nth(2) == Some(&b"F"[..])
}

/// Where the last `n` lines begin: (index into `files`, byte offset). Reads the files
/// backwards in blocks, counting complete records that end a line.
fn tail_start(files: &[PathBuf], n: usize) -> (usize, u64) {
    const BLOCK: u64 = 64 * 1024;
    let mut seen = 0;
    for (fi, path) in files.iter().enumerate().rev() {
        let Ok(mut f) = File::open(path) else {
            continue;
        };
        let mut end = f.metadata().map(|m| m.len()).unwrap_or(0);
        // Bytes already read that belong to a line starting further back.
        let mut carry: Vec<u8> = vec![];
        let mut last_block = true;
        while end > 0 {
            let start = end.saturating_sub(BLOCK);
            let mut chunk = vec![0; (end - start) as usize];
            if f.seek(SeekFrom::Start(start)).is_err() || f.read_exact(&mut chunk).is_err() {
                return (0, 0);
            }
            chunk.extend_from_slice(&carry);
            let mut line_end = chunk.len();
            if last_block {
                // A record being written has no newline yet: not ours to count.
                line_end = chunk.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
                last_block = false;
            }
            carry.clear();
            while line_end > 0 {
                match chunk[..line_end - 1].iter().rposition(|&b| b == b'\n') {
                    Some(p) => {
                        if is_full(&chunk[p + 1..line_end - 1]) {
                            seen += 1;
                            if seen > n {
                                return (fi, start + line_end as u64);
                            }
                        }
                        line_end = p + 1;
                    }
                    None => {
                        carry = chunk[..line_end].to_vec();
                        break;
                    }
                }
            }
            end = start;
        }
        // What is left is the file's first line.
        if carry.len() > 1 && is_full(&carry[..carry.len() - 1]) {
            seen += 1;
            if seen > n {
                return (fi, carry.len() as u64);
            }
        }
    }
    (0, 0)
}

/// What `logs` returns.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Keep reading new lines until the container stops.
    pub follow: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    pub since: Option<SystemTime>,
    pub until: Option<SystemTime>,
}

/// Lines of a container's log, oldest first; with `follow` it waits for new lines
/// (reading on through rotations) until `alive` says the writer has gone.
pub struct LogStream {
    path: PathBuf,
    opts: LogOptions,
    /// Lines read but not yet returned.
    ready: std::collections::VecDeque<LogLine>,
    /// The current file with its inode, read up to `pos`.
    cur: Option<(BufReader<File>, u64)>,
    pending: [String; 2],
    alive: Box<dyn FnMut() -> bool + Send>,
    done: bool,
}

impl LogStream {
    pub fn open(
        path: &Path,
        opts: LogOptions,
        alive: Box<dyn FnMut() -> bool + Send>,
    ) -> std::io::Result<LogStream> {
        let mut s = LogStream {
            path: path.to_path_buf(),
            opts,
            ready: Default::default(),
            cur: None,
            pending: Default::default(),
            alive,
            done: false,
        };
        // Everything there now, or with `tail` only from where the last lines begin
        // (found reading backwards, so a long log is not read whole).
        let all = files(path);
        let (first, offset) = match s.opts.tail {
            Some(n) if s.opts.since.is_none() => tail_start(&all, n),
            _ => (0, 0),
        };
        let mut lines = vec![];
        for (i, f) in all.iter().enumerate().skip(first) {
            let Ok(mut file) = File::open(f) else {
                continue;
            };
            let ino = file.metadata()?.ino();
            if i == first && offset > 0 {
                file.seek(SeekFrom::Start(offset))?;
            }
            let mut r = BufReader::new(file);
            s.read_available(&mut r, &mut lines);
            if i + 1 == all.len() && f == path {
                s.cur = Some((r, ino));
            }
        }
        if let Some(n) = s.opts.tail {
            let skip = lines.len().saturating_sub(n);
            lines.drain(..skip);
        }
        s.ready.extend(lines);
        Ok(s)
    }

    fn read_available(&mut self, r: &mut BufReader<File>, out: &mut Vec<LogLine>) {
        let mut line = String::new();
        loop {
            line.clear();
            let pos = r.stream_position().unwrap_or(0);
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) if !line.ends_with('\n') => {
                    // A record being written: read it again next time.
                    let _ = r.seek(SeekFrom::Start(pos));
                    return;
                }
                Ok(_) => {}
            }
            let Some((t, s, full, msg)) = parse_record(line.trim_end_matches('\n')) else {
                continue;
            };
            let p = &mut self.pending[s as usize];
            p.push_str(msg);
            if !full {
                continue;
            }
            let message = std::mem::take(p);
            if self.opts.since.is_some_and(|since| t < since)
                || self.opts.until.is_some_and(|until| t > until)
            {
                continue;
            }
            out.push(LogLine {
                time: t,
                stream: s,
                message,
            });
        }
    }

    /// Reads what was appended, following a rotation to the new file.
    fn poll(&mut self) {
        let mut lines = vec![];
        if let Some((mut r, ino)) = self.cur.take() {
            self.read_available(&mut r, &mut lines);
            let rotated = std::fs::metadata(&self.path).map(|m| m.ino()).ok() != Some(ino);
            if rotated {
                self.read_available(&mut r, &mut lines);
            } else {
                self.cur = Some((r, ino));
            }
        }
        if self.cur.is_none() {
            if let Ok(f) = File::open(&self.path) {
                if let Ok(m) = f.metadata() {
                    let mut r = BufReader::new(f);
                    self.read_available(&mut r, &mut lines);
                    self.cur = Some((r, m.ino()));
                }
            }
        }
        self.ready.extend(lines);
    }
}

impl Iterator for LogStream {
    type Item = LogLine;

    fn next(&mut self) -> Option<LogLine> {
        loop {
            if let Some(l) = self.ready.pop_front() {
                return Some(l);
            }
            if !self.opts.follow || self.done {
                return None;
            }
            // Checked before the last read so no line written before the end is lost.
            let alive = (self.alive)();
            self.poll();
            if !alive && self.ready.is_empty() {
                self.done = true;
                return None;
            }
            if self.ready.is_empty() {
                std::thread::sleep(Duration::from_millis(25));
            }
        }
    }
}

/// Reads a whole small file (used for probe output and such).
pub fn read_capped(mut r: impl Read, cap: usize) -> String {
    let mut buf = vec![];
    let _ = r.by_ref().take(cap as u64).read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_join_and_rotate() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("container.log");
        let mut w = LogWriter::open(&p, Some(200), Some(3)).unwrap();
        w.write(Stream::Stdout, b"hel").unwrap();
        w.write(Stream::Stderr, b"oops\n").unwrap();
        w.write(Stream::Stdout, b"lo\nworld\n").unwrap();
        let got: Vec<_> = LogStream::open(&p, LogOptions::default(), Box::new(|| false))
            .unwrap()
            .map(|l| (l.stream, l.message))
            .collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stderr, "oops".to_string()),
                (Stream::Stdout, "hello".to_string()),
                (Stream::Stdout, "world".to_string())
            ]
        );
        for i in 0..50 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert_eq!(files(&p).len(), 3, "max_file bounds the files kept");
        let all: Vec<_> = LogStream::open(&p, LogOptions::default(), Box::new(|| false))
            .unwrap()
            .map(|l| l.message)
            .collect();
        assert_eq!(all.last().unwrap(), "line 49");
        let tail: Vec<_> = LogStream::open(
            &p,
            LogOptions {
                tail: Some(2),
                ..Default::default()
            },
            Box::new(|| false),
        )
        .unwrap()
        .map(|l| l.message)
        .collect();
        assert_eq!(tail, vec!["line 48", "line 49"]);
    }

    #[test]
    fn tail_reads_backwards_across_files_and_partial_records() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("c.log");
        let mut w = LogWriter::open(&p, Some(20_000), Some(4)).unwrap();
        let long = "y".repeat(MAX_RECORD + 10);
        for i in 0..3000 {
            if i == 2998 {
                w.write(Stream::Stderr, format!("{long}\n").as_bytes())
                    .unwrap();
            }
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        w.write(Stream::Stdout, b"unfinished").unwrap();
        assert!(files(&p).len() > 1);
        let tail = |n| -> Vec<String> {
            LogStream::open(
                &p,
                LogOptions {
                    tail: Some(n),
                    ..Default::default()
                },
                Box::new(|| false),
            )
            .unwrap()
            .map(|l| l.message)
            .collect()
        };
        assert_eq!(tail(2), ["line 2998", "line 2999"]);
        assert_eq!(
            tail(3),
            [long.clone(), "line 2998".into(), "line 2999".into()]
        );
        assert!(tail(0).is_empty());
        let all = tail(1_000_000);
        let whole: Vec<String> = LogStream::open(&p, LogOptions::default(), Box::new(|| false))
            .unwrap()
            .map(|l| l.message)
            .collect();
        assert_eq!(all, whole);
        // The oldest lines were rotated away; the rest is there.
        assert!(all.len() > 100 && all.len() < 3001, "{}", all.len());
    }

    #[test]
    fn long_lines_become_partial_records() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("l.log");
        let mut w = LogWriter::open(&p, None, None).unwrap();
        let long = "x".repeat(MAX_RECORD * 2 + 5);
        w.write(Stream::Stdout, long.as_bytes()).unwrap();
        w.write(Stream::Stdout, b"\n").unwrap();
        let got: Vec<_> = LogStream::open(&p, LogOptions::default(), Box::new(|| false))
            .unwrap()
            .collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].message, long);
        assert!(parse_record("garbage").is_none());
    }
}
