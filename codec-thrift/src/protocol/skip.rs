//! One walker over Thrift's value grammar in raw bytes, for both jobs that
//! step over values without decoding them: finding where an unframed
//! (buffered) message ends, and skipping unknown fields inside a decoder.
//!
//! It keeps an explicit stack of pending work instead of recursing, so
//! nesting cannot exhaust the thread's stack, and every step either
//! completes or leaves the state untouched: when a buffered message has not
//! all arrived, the walk pauses and resumes where it stopped on the next
//! read, so a large message arriving in small pieces is walked once, not
//! once per piece. Every length it meets is checked against the frame limit
//! as soon as it is read, before its bytes are waited for.

use pilota::thrift::{new_protocol_exception, ProtocolExceptionKind, TType, ThriftException};

use super::{DecodeLimits, Protocol};

/// Why a step could not complete.
enum Stop {
    /// The buffer ends inside the step.
    More,
    /// The bytes cannot be a Thrift message.
    Bad(ThriftException),
}

impl From<ThriftException> for Stop {
    fn from(e: ThriftException) -> Self {
        Stop::Bad(e)
    }
}

fn invalid(msg: impl Into<faststr::FastStr>) -> Stop {
    Stop::Bad(new_protocol_exception(
        ProtocolExceptionKind::InvalidData,
        msg,
    ))
}

fn size_limit(msg: impl Into<faststr::FastStr>) -> Stop {
    Stop::Bad(new_protocol_exception(
        ProtocolExceptionKind::SizeLimit,
        msg,
    ))
}

/// Work still to do, innermost last. Types are wire type ids of the
/// walker's protocol.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// The fields of a struct, up to its STOP.
    Fields,
    /// `left` more values of type `t`.
    Values { t: u8, left: usize },
    /// `left` more map entries; `value_next` when the key was walked.
    Entries {
        k: u8,
        v: u8,
        left: usize,
        value_next: bool,
    },
}

/// What one step found.
enum Step {
    /// The value was a scalar, now walked.
    Done,
    /// The value opens a struct or container.
    Open(Work),
    /// The struct on top ended.
    Close,
}

/// A bounds-checked reader at a position in the buffer being walked.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip(&mut self, n: usize) -> Result<(), Stop> {
        if self.buf.len() - self.at < n {
            return Err(Stop::More);
        }
        self.at += n;
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, Stop> {
        let b = *self.buf.get(self.at).ok_or(Stop::More)?;
        self.at += 1;
        Ok(b)
    }

    fn i32(&mut self) -> Result<i32, Stop> {
        let b = self.buf.get(self.at..self.at + 4).ok_or(Stop::More)?;
        self.at += 4;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn varint(&mut self) -> Result<u64, Stop> {
        let mut out = 0u64;
        for i in 0..10 {
            let b = self.u8()?;
            if i == 9 && b > 1 {
                return Err(invalid("varint overflows 64 bits"));
            }
            out |= ((b & 0x7f) as u64) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(out);
            }
        }
        Err(invalid("varint too long"))
    }
}

/// Walks Thrift values in place; see the module docs.
#[derive(Debug)]
pub(crate) struct Walker {
    compact: bool,
    /// No position may pass this: the frame limit, or the end of the frame.
    max_len: usize,
    max_depth: usize,
    max_container_len: usize,
    /// Where the next step starts.
    pos: usize,
    /// Still in the message envelope (nothing on the stack yet).
    envelope: bool,
    stack: Vec<Work>,
    /// Bytes read by steps, including steps that paused: the work done.
    examined: usize,
}

impl Walker {
    /// A walker for whole messages of `protocol`, at most `max_frame_len`
    /// bytes long.
    pub(crate) fn message(protocol: Protocol, max_frame_len: usize, limits: DecodeLimits) -> Self {
        Walker {
            compact: protocol == Protocol::Compact,
            max_len: max_frame_len,
            max_depth: limits.max_depth,
            max_container_len: limits.max_container_len,
            pos: 0,
            envelope: true,
            stack: Vec::new(),
            examined: 0,
        }
    }

    /// The length of the message at the front of `buf`, or `None` until it
    /// has all arrived. Between calls `buf` may only grow at its end; after
    /// `Some`, the walker starts afresh for the message that follows.
    pub(crate) fn message_len(&mut self, buf: &[u8]) -> Result<Option<usize>, ThriftException> {
        match self.run(buf) {
            Ok(()) => {
                let n = self.pos;
                self.pos = 0;
                self.envelope = true;
                Ok(Some(n))
            }
            Err(Stop::More) if buf.len() > self.max_len => Err(new_protocol_exception(
                ProtocolExceptionKind::SizeLimit,
                format!(
                    "unframed message exceeds the limit of {} bytes",
                    self.max_len
                ),
            )),
            Err(Stop::More) => Ok(None),
            Err(Stop::Bad(e)) => Err(e),
        }
    }

    /// Bytes examined so far: a walk that resumes examines each byte about
    /// once, however the message was split into reads.
    #[cfg(test)]
    pub(crate) fn examined(&self) -> usize {
        self.examined
    }

    fn run(&mut self, buf: &[u8]) -> Result<(), Stop> {
        if self.envelope {
            let mut c = Cursor { buf, at: self.pos };
            let r = self.envelope(&mut c);
            self.examined += c.at - self.pos;
            r?;
            self.pos = c.at;
            self.envelope = false;
            self.stack.push(Work::Fields);
        }
        while let Some(&top) = self.stack.last() {
            if let Work::Values { left: 0, .. } | Work::Entries { left: 0, .. } = top {
                // A container whose last value was itself a container.
                self.stack.pop();
                continue;
            }
            let mut c = Cursor { buf, at: self.pos };
            let step = match top {
                Work::Fields => self.field(&mut c),
                Work::Values { t, .. } => self.value(&mut c, t),
                Work::Entries {
                    k, v, value_next, ..
                } => self.value(&mut c, if value_next { v } else { k }),
            };
            self.examined += c.at - self.pos;
            let step = step?;
            // The step completed: commit it.
            self.pos = c.at;
            let (rest, finished) = match top {
                Work::Fields => (top, matches!(step, Step::Close)),
                Work::Values { t, left } => (Work::Values { t, left: left - 1 }, left == 1),
                Work::Entries {
                    k,
                    v,
                    left,
                    value_next,
                } => {
                    let left = if value_next { left - 1 } else { left };
                    let rest = Work::Entries {
                        k,
                        v,
                        left,
                        value_next: !value_next,
                    };
                    (rest, left == 0)
                }
            };
            // An exhausted container stays under a child it opened, so the
            // stack is as deep as the nesting and the depth bound holds.
            let top_at = self.stack.len() - 1;
            if finished && !matches!(step, Step::Open(_)) {
                self.stack.truncate(top_at);
            } else {
                self.stack[top_at] = rest;
            }
            if let Step::Open(w) = step {
                if self.stack.len() >= self.max_depth {
                    return Err(Stop::Bad(new_protocol_exception(
                        ProtocolExceptionKind::DepthLimit,
                        format!("nesting deeper than {}", self.max_depth),
                    )));
                }
                self.stack.push(w);
            }
        }
        Ok(())
    }

    /// A declared byte length, refused at once if it could not fit.
    fn len(&self, c: &mut Cursor<'_>) -> Result<usize, Stop> {
        let n = if self.compact {
            c.varint()? as i64
        } else {
            c.i32()? as i64
        };
        if n < 0 {
            return Err(Stop::Bad(new_protocol_exception(
                ProtocolExceptionKind::NegativeSize,
                format!("negative length {n}"),
            )));
        }
        self.fits(c.at, n as u64, 1)
    }

    /// Refuse `n` items of `each` bytes at `at` that would pass `max_len`.
    fn fits(&self, at: usize, n: u64, each: usize) -> Result<usize, Stop> {
        let end = n.saturating_mul(each as u64).saturating_add(at as u64);
        if end > self.max_len as u64 {
            return Err(size_limit(format!(
                "length {n} at byte {at} runs past the limit of {} bytes",
                self.max_len
            )));
        }
        Ok(n as usize)
    }

    /// A declared element count of type `t`, checked like the decoders do.
    fn count(&self, c: &Cursor<'_>, n: u64, t: &[u8]) -> Result<usize, Stop> {
        if n > self.max_container_len as u64 {
            return Err(size_limit(format!(
                "container of {n} elements exceeds the limit of {}",
                self.max_container_len
            )));
        }
        let mut each = 0;
        for &t in t {
            each += self.min_size(t)?;
        }
        self.fits(c.at, n, each)
    }

    /// Fewest bytes a value of wire type `t` occupies; an error for a type
    /// that cannot be an element (STOP) or is unknown.
    fn min_size(&self, t: u8) -> Result<usize, Stop> {
        let size = if self.compact {
            match t {
                1..=12 => 1,
                13 => 16,
                _ => 0,
            }
        } else {
            match t {
                2 | 3 | 12 => 1,
                6 => 2,
                8 | 11 => 4,
                4 | 10 => 8,
                14 | 15 => 5,
                13 => 6,
                16 => 16,
                _ => 0,
            }
        };
        if size == 0 {
            return Err(invalid(format!("type id {t} cannot be a value")));
        }
        Ok(size)
    }

    fn envelope(&self, c: &mut Cursor<'_>) -> Result<(), Stop> {
        if self.compact {
            c.skip(2)?;
            c.varint()?;
            let n = self.len(c)?;
            c.skip(n)
        } else {
            let first = c.i32()?;
            if first < 0 {
                if (first as u32) & 0xffff_0000 != 0x8001_0000 {
                    return Err(Stop::Bad(new_protocol_exception(
                        ProtocolExceptionKind::BadVersion,
                        format!("bad binary protocol version {:#x}", first as u32),
                    )));
                }
                let n = self.len(c)?;
                c.skip(n)?;
                c.skip(4)
            } else {
                // Non-strict: the first word is the name's length. Text such
                // as "GET " read as one is refused here, not waited for.
                let n = self.fits(c.at, first as u64, 1)?;
                c.skip(n)?;
                c.skip(5)
            }
        }
    }

    fn field(&self, c: &mut Cursor<'_>) -> Result<Step, Stop> {
        if self.compact {
            let h = c.u8()?;
            let t = h & 0x0f;
            if t == 0 {
                return Ok(Step::Close);
            }
            if h >> 4 == 0 {
                c.varint()?;
            }
            // Bools in fields carry their value in the type.
            if t == 1 || t == 2 {
                return Ok(Step::Done);
            }
            self.value(c, t)
        } else {
            let t = c.u8()?;
            if t == 0 {
                return Ok(Step::Close);
            }
            c.skip(2)?;
            self.value(c, t)
        }
    }

    fn value(&self, c: &mut Cursor<'_>, t: u8) -> Result<Step, Stop> {
        let open = |n: usize, w: Work| Ok(if n == 0 { Step::Done } else { Step::Open(w) });
        if self.compact {
            match t {
                // In containers a bool is a byte.
                1..=3 => c.skip(1)?,
                4..=6 => {
                    c.varint()?;
                }
                7 => c.skip(8)?,
                8 => {
                    let n = self.len(c)?;
                    c.skip(n)?;
                }
                9 | 10 => {
                    let h = c.u8()?;
                    let mut n = (h >> 4) as u64;
                    if n == 15 {
                        n = c.varint()?;
                    }
                    let e = h & 0x0f;
                    let n = self.count(c, n, &[e])?;
                    return open(n, Work::Values { t: e, left: n });
                }
                11 => {
                    let n = c.varint()?;
                    if n == 0 {
                        return Ok(Step::Done);
                    }
                    let kv = c.u8()?;
                    let (k, v) = (kv >> 4, kv & 0x0f);
                    let n = self.count(c, n, &[k, v])?;
                    return open(
                        n,
                        Work::Entries {
                            k,
                            v,
                            left: n,
                            value_next: false,
                        },
                    );
                }
                12 => return Ok(Step::Open(Work::Fields)),
                13 => c.skip(16)?,
                _ => return Err(invalid(format!("unknown compact type {t}"))),
            }
        } else {
            match t {
                2 | 3 => c.skip(1)?,
                6 => c.skip(2)?,
                8 => c.skip(4)?,
                4 | 10 => c.skip(8)?,
                16 => c.skip(16)?,
                11 => {
                    let n = self.len(c)?;
                    c.skip(n)?;
                }
                12 => return Ok(Step::Open(Work::Fields)),
                13 => {
                    let k = c.u8()?;
                    let v = c.u8()?;
                    let n = c.i32()?;
                    if n < 0 {
                        return Err(invalid(format!("negative map size {n}")));
                    }
                    let n = self.count(c, n as u64, &[k, v])?;
                    return open(
                        n,
                        Work::Entries {
                            k,
                            v,
                            left: n,
                            value_next: false,
                        },
                    );
                }
                14 | 15 => {
                    let e = c.u8()?;
                    let n = c.i32()?;
                    if n < 0 {
                        return Err(invalid(format!("negative container size {n}")));
                    }
                    let n = self.count(c, n as u64, &[e])?;
                    return open(n, Work::Values { t: e, left: n });
                }
                _ => return Err(invalid(format!("unknown type id {t}"))),
            }
        }
        Ok(Step::Done)
    }
}

/// Skip one value of type `t` at the front of `buf` (the rest of a frame):
/// the length it occupies. Nesting is bounded by `max_depth`.
pub(crate) fn skip_len(
    buf: &[u8],
    protocol: Protocol,
    t: TType,
    max_depth: usize,
    limits: DecodeLimits,
) -> Result<usize, ThriftException> {
    let id = match protocol {
        Protocol::Binary => t as u8,
        Protocol::Compact => compact_id(t),
    };
    let mut w = Walker {
        compact: protocol == Protocol::Compact,
        max_len: buf.len(),
        max_depth,
        max_container_len: limits.max_container_len,
        pos: 0,
        envelope: false,
        stack: vec![Work::Values { t: id, left: 1 }],
        examined: 0,
    };
    match w.run(buf) {
        Ok(()) => Ok(w.pos),
        Err(Stop::More) => Err(super::eof("a skipped value")),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// The compact protocol's id for `t` (0, which no value has, for STOP and
/// VOID: the walker refuses it).
fn compact_id(t: TType) -> u8 {
    match t {
        TType::Bool => 1,
        TType::I8 => 3,
        TType::I16 => 4,
        TType::I32 => 5,
        TType::I64 => 6,
        TType::Double => 7,
        TType::Binary => 8,
        TType::List => 9,
        TType::Set => 10,
        TType::Map => 11,
        TType::Struct => 12,
        TType::Uuid => 13,
        TType::Stop | TType::Void => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DecodeLimits {
        DecodeLimits::default()
    }

    /// A strict binary call of `ping` whose argument struct holds, as field
    /// 1, a list of `n` i64s.
    fn binary_call_with_list(n: usize) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&0x8001_0001u32.to_be_bytes());
        m.extend_from_slice(&4u32.to_be_bytes());
        m.extend_from_slice(b"ping");
        m.extend_from_slice(&1i32.to_be_bytes());
        m.extend_from_slice(&[15, 0, 1, 10]);
        m.extend_from_slice(&(n as u32).to_be_bytes());
        for i in 0..n as u64 {
            m.extend_from_slice(&i.to_be_bytes());
        }
        m.push(0);
        m
    }

    #[test]
    fn a_message_in_pieces_is_walked_once() {
        let m = binary_call_with_list(128 * 1024);
        assert!(m.len() > 1 << 20);
        let mut w = Walker::message(Protocol::Binary, 16 << 20, limits());
        let mut calls = 0;
        let mut end = 0;
        let len = loop {
            end = (end + 4096).min(m.len());
            calls += 1;
            if let Some(n) = w.message_len(&m[..end]).unwrap() {
                break n;
            }
        };
        assert_eq!(len, m.len());
        // Each pause re-reads at most the one step it stopped in (here an
        // i64, 8 bytes); walking from the start each time would have read
        // some 128 MiB.
        assert!(w.examined() <= m.len() + 8 * calls, "{}", w.examined());
        // The next message starts afresh.
        assert_eq!(w.message_len(&m).unwrap(), Some(m.len()));
    }

    #[test]
    fn declared_lengths_are_checked_before_their_bytes_arrive() {
        let w = || Walker::message(Protocol::Binary, 1 << 20, limits());
        // "GET " is a non-strict name of 1.2 GB.
        let e = w().message_len(b"GET / HTTP/1.1\r\n").unwrap_err();
        assert!(e.to_string().contains("SizeLimit"), "{e}");
        // A strict name, and a string field, that could not fit in a frame.
        let mut m = 0x8001_0001u32.to_be_bytes().to_vec();
        m.extend_from_slice(&(2u32 << 20).to_be_bytes());
        assert!(w().message_len(&m).is_err());
        let mut m = binary_call_with_list(0);
        m.pop();
        m.extend_from_slice(&[11, 0, 2]);
        m.extend_from_slice(&(1u32 << 20).to_be_bytes());
        assert!(w().message_len(&m).is_err());
        // A list of more i64s than a frame holds.
        let mut m = binary_call_with_list(0);
        let at = m.len() - 5;
        m[at..at + 4].copy_from_slice(&(200_000u32).to_be_bytes());
        m.truncate(at + 4);
        assert!(w().message_len(&m).is_err());
        // Truncated but plausible: wait for more.
        let m = binary_call_with_list(10);
        assert_eq!(w().message_len(&m[..m.len() - 1]).unwrap(), None);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        // 100,000 nested lists of lists, in both protocols.
        let binary = [15, 0, 0, 0, 1].repeat(100_000);
        let compact = vec![0x19; 100_000];
        let e = skip_len(&binary, Protocol::Binary, TType::List, 64, limits()).unwrap_err();
        assert!(e.to_string().contains("DepthLimit"), "{e}");
        let e = skip_len(&compact, Protocol::Compact, TType::List, 64, limits()).unwrap_err();
        assert!(e.to_string().contains("DepthLimit"), "{e}");
    }

    #[test]
    fn skip_covers_every_type() {
        // struct { 1: bool, 2: map<string, list<i16>>, 3: uuid, 4: double }
        let mut b = vec![2, 0, 1, 1, 13, 0, 2, 11, 15, 0, 0, 0, 1];
        b.extend_from_slice(&[0, 0, 0, 1, b'k', 6, 0, 0, 0, 2, 0, 1, 0, 2]);
        b.extend_from_slice(&[16, 0, 3]);
        b.extend_from_slice(&[7; 16]);
        b.extend_from_slice(&[4, 0, 4]);
        b.extend_from_slice(&[0; 8]);
        b.push(0);
        b.push(0xaa); // the next value
        assert_eq!(
            skip_len(&b, Protocol::Binary, TType::Struct, 64, limits()).unwrap(),
            b.len() - 1
        );
        assert!(skip_len(
            &b[..b.len() - 3],
            Protocol::Binary,
            TType::Struct,
            64,
            limits()
        )
        .is_err());
    }
}
