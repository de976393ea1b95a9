//! Small file helpers for cgroupfs: control files exist already (the kernel makes
//! them), so writes never create files, and every error names the file.

use std::io::Write;
use std::path::Path;

use super::{CgroupError, Result};

/// Writes `value` to an existing control file in one write(2), as the kernel expects.
pub fn write(path: &Path, value: &str) -> Result<()> {
    let res = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

pub fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| CgroupError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a file holding one unsigned number ("max" reads as None).
pub fn read_u64(path: &Path) -> Result<Option<u64>> {
    let s = read(path)?;
    let t = s.trim();
    if t == "max" {
        return Ok(None);
    }
    t.parse().map(Some).map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        content: s.clone(),
    })
}

/// Reads a file if it exists: Ok(None) when it does not.
pub fn read_u64_opt(path: &Path) -> Result<Option<u64>> {
    if !path.exists() {
        return Ok(None);
    }
    read_u64(path)
}

/// Finds `key N` in a flat-keyed file such as memory.events or cpu.stat.
pub fn keyed(content: &str, key: &str) -> Option<u64> {
    content.lines().find_map(|l| {
        let mut it = l.split_whitespace();
        (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
    })
}

/// Reads the pids listed one per line in cgroup.procs.
pub fn read_pids(path: &Path) -> Result<Vec<i32>> {
    let s = read(path)?;
    Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

/// Makes a directory and its parents, tolerating a concurrent creator.
pub fn mkdir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| CgroupError::Dir {
        op: "create",
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn keyed_finds_values() {
        let s = "usage_usec 1200\nuser_usec 10\n";
        assert_eq!(keyed(s, "usage_usec"), Some(1200));
        assert_eq!(keyed(s, "nope"), None);
    }
}
