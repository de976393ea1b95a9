//! Gives back the pages the monitor needed only to start its container. Setting up a
//! container runs a lot of code (spec parsing, mounts, cgroups) that the supervision
//! loop never runs again; its pages stay mapped, and with the kernel's fault-around
//! (16 pages per fault) that is ~2 MiB of code resident in every monitor. Dropping the
//! mappings of read-only, file-backed regions that hold no private (copy-on-write)
//! page is lossless: the page cache keeps the data, and whatever the loop touches
//! later faults back in. Writable or modified regions are never touched.

/// Drops clean read-only file mappings and returns freed heap to the kernel.
pub fn shed_startup_pages() {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return;
    };
    let mut ranges = vec![];
    let mut cur: Option<(usize, usize, bool)> = None;
    let mut anon_free = true;
    let mut finish = |cur: &mut Option<(usize, usize, bool)>, anon_free: bool| {
        if let Some((a, b, ok)) = cur.take() {
            if ok && anon_free {
                ranges.push((a, b));
            }
        }
    };
    for line in smaps.lines() {
        let mut f = line.split_whitespace();
        let first = f.next().unwrap_or("");
        if let Some((a, b)) = first.split_once('-') {
            if let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) {
                finish(&mut cur, anon_free);
                let perms = f.next().unwrap_or("");
                let path = f.nth(3).unwrap_or("");
                let ok = (perms == "r-xp" || perms == "r--p") && path.starts_with('/');
                cur = Some((a, b, ok));
                anon_free = true;
                continue;
            }
        }
        if let Some(v) = line.strip_prefix("Anonymous:") {
            anon_free &= v.trim().starts_with("0 ");
        }
        if let Some(v) = line.strip_prefix("Private_Dirty:") {
            anon_free &= v.trim().starts_with("0 ");
        }
    }
    finish(&mut cur, anon_free);
    for (a, b) in ranges {
        // SAFETY: the range is a read-only, unmodified file mapping of this process:
        // MADV_DONTNEED only drops its page-table entries; contents come back from
        // the file on the next access.
        unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
    }
    // SAFETY: plain libc call.
    unsafe { libc::malloc_trim(0) };
}
