//! Thumbnails of sources streamed from S3 in pieces, decoded row by row on a blocking thread:
//! memory stays a few MiB whatever the source's size.

use backdrop_report::thumbnail;
use bytes::Bytes;

use super::ReportError;
use crate::store::ObjectStore;

/// Sources larger than this get no thumbnail (the service takes at most 20 MiB).
pub(super) const MAX_THUMBNAIL_SOURCE: u64 = 25 * 1024 * 1024;

/// The most bytes of an object handed to the decoder at once.
const CHUNK: usize = 1024 * 1024;

/// The thumbnail of a source PNG streamed from the store in pieces of at most [`CHUNK`] bytes:
/// the decoder runs on a blocking thread and reads the pieces as the async side receives them,
/// at most two ahead,
/// so memory is a few chunks and one row whatever the object's size. `None` when the object is
/// not a PNG that can be reduced.
pub(super) async fn source_thumbnail<S: ObjectStore>(
    store: &S,
    bucket: &str,
    key: &str,
    etag: &str,
    size: u64,
) -> Result<Option<Vec<u8>>, ReportError> {
    let (chunks, received) = tokio::sync::mpsc::channel::<Bytes>(2);
    let decode = tokio::task::spawn_blocking(move || {
        let reader = ChunkReader {
            received,
            current: Bytes::new(),
        };
        thumbnail::png_on_checkerboard(reader).ok()
    });
    if let Some(mut body) = store.open(bucket, key, etag).await? {
        let mut read = 0u64;
        while read < size {
            let mut chunk = bytes::BytesMut::with_capacity(CHUNK);
            let n = tokio::io::AsyncReadExt::read_buf(&mut body, &mut chunk)
                .await
                .map_err(|e| ReportError(format!("reading {key} for its thumbnail: {e}")))?;
            if n == 0 {
                break;
            }
            read += n as u64;
            if chunks.send(chunk.freeze()).await.is_err() {
                break; // the decoder is done (or gave up) before the end of the object
            }
        }
    }
    drop(chunks);
    decode
        .await
        .map_err(|e| ReportError(format!("thumbnail: {e}")))
}

/// A reader over chunks arriving on a channel (for a decoder on a blocking thread). It cannot
/// seek: the PNG decoder never does, it only asks for the ability.
struct ChunkReader {
    received: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl std::io::Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let available = std::io::BufRead::fill_buf(self)?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        std::io::BufRead::consume(self, n);
        Ok(n)
    }
}

impl std::io::BufRead for ChunkReader {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.received.blocking_recv() {
                Some(chunk) => self.current = chunk,
                None => break,
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, amount: usize) {
        let amount = amount.min(self.current.len());
        let _ = self.current.split_to(amount);
    }
}

impl std::io::Seek for ChunkReader {
    fn seek(&mut self, _: std::io::SeekFrom) -> std::io::Result<u64> {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "an S3 object read in chunks cannot seek",
        ))
    }
}
