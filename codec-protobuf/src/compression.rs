//! `grpc-encoding`: gzip, or identity. Decompression is bounded by the
//! message size limit, so a small compressed message cannot inflate past it.

use std::io::{Read, Write};

use bytes::Bytes;
use weft_core::{Code, Status};

/// A message compression Weft speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// `gzip`.
    Gzip,
}

/// What Weft advertises in `grpc-accept-encoding`. `identity` is listed
/// although the spec implies it: Kitex's server answers with the first
/// listed encoding it has registered and, finding none (it registers no
/// gzip by default), fails the call unless `identity` is listed.
pub const ACCEPT_ENCODING: &str = "identity,gzip";

impl Encoding {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
        }
    }

    /// The encoding a `grpc-encoding` value names: `Ok(None)` for identity,
    /// `Err(name)` for one Weft does not speak.
    pub fn parse(name: &str) -> Result<Option<Encoding>, &str> {
        match name.trim() {
            "identity" | "" => Ok(None),
            "gzip" => Ok(Some(Encoding::Gzip)),
            other => Err(other),
        }
    }

    /// The first encoding of a `grpc-accept-encoding` list Weft speaks.
    pub fn from_accept(list: &str) -> Option<Encoding> {
        list.split(',')
            .find_map(|name| Encoding::parse(name).ok().flatten())
    }

    pub(crate) fn compress(self, data: &[u8]) -> Result<Vec<u8>, Status> {
        match self {
            Encoding::Gzip => {
                let mut e = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 2 + 32),
                    flate2::Compression::fast(),
                );
                e.write_all(data)
                    .and_then(|_| e.finish())
                    .map_err(|err| Status::internal(format!("grpc: compressing: {err}")))
            }
        }
    }

    /// Inflate `data`, refusing output past `max` bytes as soon as it passes.
    pub(crate) fn decompress(self, data: &[u8], max: usize) -> Result<Bytes, Status> {
        match self {
            Encoding::Gzip => {
                let mut out = Vec::with_capacity((data.len() * 2).min(max));
                let read = flate2::read::GzDecoder::new(data)
                    .take(max as u64 + 1)
                    .read_to_end(&mut out);
                match read {
                    Ok(_) if out.len() > max => Err(Status::new(
                        Code::ResourceExhausted,
                        format!(
                            "grpc: received message after decompression larger than max ({max})"
                        ),
                    )),
                    Ok(_) => Ok(Bytes::from(out)),
                    Err(e) => Err(Status::internal(format!(
                        "grpc: decompressing a gzip message: {e}"
                    ))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bomb() {
        let data = vec![b'a'; 100_000];
        let z = Encoding::Gzip.compress(&data).unwrap();
        assert!(z.len() < 1024, "{}", z.len());
        assert_eq!(
            &Encoding::Gzip.decompress(&z, 100_000).unwrap()[..],
            &data[..]
        );
        let e = Encoding::Gzip.decompress(&z, 99_999).unwrap_err();
        assert_eq!(e.code(), Code::ResourceExhausted);
        assert_eq!(
            Encoding::Gzip
                .decompress(b"not gzip", 10)
                .unwrap_err()
                .code(),
            Code::Internal
        );
    }

    #[test]
    fn names() {
        assert_eq!(Encoding::parse("identity"), Ok(None));
        assert_eq!(Encoding::parse("gzip"), Ok(Some(Encoding::Gzip)));
        assert_eq!(Encoding::parse("br"), Err("br"));
        assert_eq!(
            Encoding::from_accept("identity, deflate,gzip"),
            Some(Encoding::Gzip)
        );
        assert_eq!(Encoding::from_accept("identity"), None);
    }
}
