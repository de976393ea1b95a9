//! The byte stream of a raw attach (`Request::Attach { raw: true, .. }`) after the
//! response line: frames in both directions, each an 8-byte header (kind, three zero
//! bytes, payload length as u32 big-endian, the layout of Docker's multiplexed attach
//! stream) and the payload. Raw bytes, so a terminal's output (escape sequences, no
//! line ends) and binary data pass unchanged.

/// Monitor to client: container output.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Monitor to client: the container exited for good; payload: the code (i32 BE).
pub const EXIT: u8 = 3;
/// Client to monitor: bytes for the container's stdin.
pub const STDIN: u8 = 0;
/// Client to monitor: no more stdin (EOF for a pipe, Ctrl-D for a terminal).
pub const CLOSE_STDIN: u8 = 4;
/// Client to monitor: the terminal's new size (rows, cols as u16 BE).
pub const RESIZE: u8 = 5;

/// Larger frames are refused: a client that sends one is dropped.
const MAX_PAYLOAD: usize = 1 << 20;

/// Appends one frame to `out`.
pub fn put(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    out.extend_from_slice(&[kind, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

pub fn put_resize(out: &mut Vec<u8>, rows: u16, cols: u16) {
    let mut p = [0u8; 4];
    p[..2].copy_from_slice(&rows.to_be_bytes());
    p[2..].copy_from_slice(&cols.to_be_bytes());
    put(out, RESIZE, &p);
}

/// A frame announced larger than either side ever sends.
#[derive(Debug, thiserror::Error)]
#[error("a frame of {0} bytes (at most {MAX_PAYLOAD})")]
pub struct FrameTooLarge(pub usize);

/// Reassembles frames from bytes as they arrive.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next whole frame, `Ok(None)` until one is complete; `Err` on a frame
    /// larger than any side sends (a confused or hostile peer).
    pub fn next_frame(&mut self) -> Result<Option<(u8, Vec<u8>)>, FrameTooLarge> {
        if self.buf.len() < 8 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
        if len > MAX_PAYLOAD {
            return Err(FrameTooLarge(len));
        }
        if self.buf.len() < 8 + len {
            return Ok(None);
        }
        let kind = self.buf[0];
        let payload = self.buf[8..8 + len].to_vec();
        self.buf.drain(..8 + len);
        Ok(Some((kind, payload)))
    }
}

/// (rows, cols) of a RESIZE payload.
pub fn size_of(payload: &[u8]) -> Option<(u16, u16)> {
    let p: [u8; 4] = payload.try_into().ok()?;
    Some((
        u16::from_be_bytes([p[0], p[1]]),
        u16::from_be_bytes([p[2], p[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut out = Vec::new();
        put(&mut out, STDIN, b"hello");
        put(&mut out, CLOSE_STDIN, b"");
        put_resize(&mut out, 33, 77);
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in out.chunks(3) {
            d.push(b);
            while let Ok(Some(f)) = d.next_frame() {
                got.push(f);
            }
        }
        assert_eq!(got[0], (STDIN, b"hello".to_vec()));
        assert_eq!(got[1], (CLOSE_STDIN, vec![]));
        assert_eq!(size_of(&got[2].1), Some((33, 77)));
        let mut d = Decoder::default();
        d.push(&[0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }
}
