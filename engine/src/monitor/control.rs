//! The monitor's control socket (`BERTH_RUN/containers/<id>/control.sock`): one JSON
//! request line, one JSON response line. `attach` then streams the container's output
//! as log records until either side closes; `attach` with `raw` streams frames both ways
//! instead (output, stdin, resize, exit: see [`super::frames`]).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::state::Status;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Is the monitor alive, and what is its container doing.
    Status,
    /// Stop signal, then SIGKILL after `timeout_ms`; no restart follows.
    Stop {
        timeout_ms: u64,
    },
    /// A signal to the container's first process.
    Kill {
        signal: i32,
    },
    Pause,
    Unpause,
    /// Stream the live output. A container started to wait for its client (`berth run`)
    /// starts on the first attach, so that client sees its output from the first byte.
    Attach {
        /// Raw frames instead of log records; the client may send stdin (when the
        /// container keeps it open) and terminal sizes.
        #[serde(default)]
        raw: bool,
        /// The container's stdin closes when this client goes (`docker run -i`).
        #[serde(default)]
        stdin_once: bool,
        /// The terminal's size (rows, cols), set before a waiting container starts.
        #[serde(default)]
        size: Option<(u16, u16)>,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub ok: bool,
    pub error: Option<String>,
    pub status: Option<Status>,
    pub pid: i32,
}

/// Sends `req` and returns the response and the connection (for `attach`).
pub fn call(sock: &Path, req: &Request) -> std::io::Result<(Response, BufReader<UnixStream>)> {
    let mut s = UnixStream::connect(sock)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut line = serde_json::to_vec(req).expect("requests serialise");
    line.push(b'\n');
    s.write_all(&line)?;
    let mut r = BufReader::new(s);
    let mut resp = String::new();
    r.read_line(&mut resp)?;
    let resp: Response = serde_json::from_str(&resp).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad response from monitor: {e}"),
        )
    })?;
    Ok((resp, r))
}
