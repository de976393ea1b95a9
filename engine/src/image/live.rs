//! Unpacking a layer while it downloads. The pull hands each chunk it writes to the
//! blob's partial file to a blocking thread too, which decompresses, hashes and untars
//! it into a temp directory as it arrives: one pass over the bytes instead of download,
//! fsync, re-read, then unpack. Nothing is trusted early: the directory only moves to
//! `layers/` once the blob's own digest and the layer's diff_id were both checked
//! ([`LiveUnpack::finish`]); on any failure it is dropped, and with it every file.

use std::io::{self, Read};

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

use super::digest::Digest;
use super::error::{io_err, Result};
use super::store::{LockGuard, Store};
use super::unpack;

/// Chunks buffered between the download and the unpacker: enough to ride out a short
/// stall on either side, few enough that a slow unpack slows the download (backpressure)
/// rather than filling memory.
const QUEUE: usize = 16;

/// A layer being unpacked from its download.
pub struct LiveUnpack {
    tx: Option<mpsc::Sender<Bytes>>,
    worker: tokio::task::JoinHandle<Result<Option<(tempfile::TempDir, LockGuard)>>>,
}

impl LiveUnpack {
    /// Starts the unpacker for layer `diff_id` of blob `blob`; it takes the layer's lock
    /// (so a concurrent pull of the same layer waits) and does nothing if the layer
    /// turns out to be there already.
    pub fn start(store: &Store, blob: &Digest, diff_id: &Digest) -> LiveUnpack {
        let (tx, rx) = mpsc::channel::<Bytes>(QUEUE);
        let (store, blob, diff_id) = (store.clone(), blob.clone(), diff_id.clone());
        let worker = tokio::task::spawn_blocking(move || {
            let lock = store.lock_item("layer", &diff_id)?;
            if store.has_layer(&diff_id) {
                return Ok(None); // dropping `rx` tells the download to stop sending
            }
            let reader = unpack::decompressed(ChunkReader {
                rx,
                cur: Bytes::new(),
            })
            .map_err(io_err("reading layer", store.blob_path(&blob)))?;
            let tmp = unpack::unpack_to_tmp(&store, reader, &blob, &diff_id)?;
            Ok(Some((tmp, lock)))
        });
        LiveUnpack {
            tx: Some(tx),
            worker,
        }
    }

    /// Hands the unpacker the next chunk of the blob. If the unpacker has stopped (it
    /// failed, or found the layer there), chunks are no longer sent; [`finish`] tells why.
    pub async fn feed(&mut self, chunk: &Bytes) {
        if let Some(tx) = &self.tx {
            if tx.send(chunk.clone()).await.is_err() {
                self.tx = None;
            }
        }
    }

    /// The download is over and its digest is `blob_ok` (checked by the caller). Waits
    /// for the unpacker; moves the layer into place only if the blob was good and the
    /// layer's diff_id matched, else removes it and returns the unpacker's error.
    pub async fn finish(mut self, store: &Store, diff_id: &Digest, blob_ok: bool) -> Result<()> {
        self.tx = None; // end of stream for the unpacker
        let res = self.worker.await.map_err(|e| {
            io_err("unpacking layer", store.layer_path(diff_id))(io::Error::other(e))
        })?;
        if !blob_ok {
            return Ok(()); // the caller reports the blob; the dropped result removes the layer
        }
        match res? {
            Some((tmp, _lock)) => unpack::commit_layer(store, tmp, diff_id),
            None => Ok(()),
        }
    }
}

/// The chunks of a download as a blocking `Read`, for the unpacker's thread.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur.advance(n);
        Ok(n)
    }
}
