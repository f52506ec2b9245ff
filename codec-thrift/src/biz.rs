//! Kitex's business status errors on TTHeader, to and from [`Status`].
//!
//! A Kitex handler that returns `kerrors.NewBizStatusError(code, message)`
//! (or `…WithExtra`) is answered with an ordinary REPLY whose result struct
//! is empty, and three TTHeader string headers: `biz-status` (the code, in
//! decimal; zero means none), `biz-message`, and `biz-extra` (a JSON object
//! of strings, written only when there is extra). The Kitex client turns the
//! headers into a `BizStatusError` instead of reading the result.
//!
//! In Weft the error is a [`Status`] of code [`Code::Unknown`] whose message
//! is the business message and whose source is a [`BizStatus`]: a handler
//! returns `BizStatus::new(…).into()`, a caller reads [`BizStatus::of`]. On
//! TTHeader the server codec writes it as Kitex does; on every other
//! transport it travels as the `TApplicationException` of its `Status`.

use std::fmt;

use faststr::FastStr;
use weft_core::{Code, Status};

use crate::frame::Header;

/// The TTHeader string key of the business status code.
pub const BIZ_STATUS_KEY: &str = "biz-status";
/// The TTHeader string key of the business message.
pub const BIZ_MESSAGE_KEY: &str = "biz-message";
/// The TTHeader string key of the extra key/values, a JSON object of strings.
pub const BIZ_EXTRA_KEY: &str = "biz-extra";

/// A business status error: an application's own code (non-zero), a
/// message, and extra string key/values, as Kitex's `BizStatusError` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BizStatus {
    code: i32,
    message: FastStr,
    extra: Vec<(FastStr, FastStr)>,
}

impl BizStatus {
    /// A business status `code` (non-zero: Kitex reads zero as no error)
    /// with `message`.
    pub fn new(code: i32, message: impl Into<FastStr>) -> BizStatus {
        BizStatus {
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    /// Add an extra key/value (a later value for the same key replaces it).
    #[must_use]
    pub fn with_extra(mut self, key: impl Into<FastStr>, value: impl Into<FastStr>) -> BizStatus {
        let (key, value) = (key.into(), value.into());
        match self.extra.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.extra.push((key, value)),
        }
        self
    }

    /// The business status code.
    pub fn code(&self) -> i32 {
        self.code
    }

    /// The business message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The extra key/values, in the order they were added or received.
    pub fn extra(&self) -> &[(FastStr, FastStr)] {
        &self.extra
    }

    /// The extra value for `key`.
    pub fn extra_value(&self, key: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The business status a [`Status`] carries, if any.
    pub fn of(status: &Status) -> Option<&BizStatus> {
        std::error::Error::source(status)?.downcast_ref()
    }

    /// Read the business status of a response header: `Ok(None)` when
    /// `biz-status` is absent, zero or not a number (as Kitex reads it), an
    /// error when `biz-extra` is not a JSON object of strings.
    pub fn from_header(header: &Header) -> Result<Option<BizStatus>, Status> {
        let code = match header.string(BIZ_STATUS_KEY).map(|v| v.parse::<i32>()) {
            Some(Ok(code)) if code != 0 => code,
            _ => return Ok(None),
        };
        let mut biz = BizStatus::new(
            code,
            header
                .string(BIZ_MESSAGE_KEY)
                .map(|m| header.fast(m))
                .unwrap_or_default(),
        );
        if let Some(extra) = header.string(BIZ_EXTRA_KEY).filter(|v| !v.is_empty()) {
            biz.extra = json::parse_string_map(extra).ok_or_else(|| {
                Status::invalid_argument(format!("malformed {BIZ_EXTRA_KEY} header: {extra}"))
            })?;
        }
        Ok(Some(biz))
    }

    /// The value of the `biz-extra` header: the extra as a JSON object, or
    /// `None` when there is none.
    pub fn extra_json(&self) -> Option<String> {
        (!self.extra.is_empty()).then(|| json::write_string_map(&self.extra))
    }
}

impl fmt::Display for BizStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "biz status {}: {}", self.code, self.message)
    }
}

impl std::error::Error for BizStatus {}

impl From<BizStatus> for Status {
    /// A status of code [`Code::Unknown`] with the business message, whose
    /// source is the business status.
    fn from(biz: BizStatus) -> Status {
        Status::new(Code::Unknown, biz.message.clone()).with_source(biz)
    }
}

/// Just enough JSON for a flat object of strings, as Kitex writes `biz-extra`.
mod json {
    use faststr::FastStr;

    pub(super) fn write_string_map(kv: &[(FastStr, FastStr)]) -> String {
        let mut out =
            String::with_capacity(2 + kv.iter().map(|(k, v)| k.len() + v.len() + 6).sum::<usize>());
        out.push('{');
        for (i, (k, v)) in kv.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(&mut out, k);
            out.push(':');
            write_string(&mut out, v);
        }
        out.push('}');
        out
    }

    fn write_string(out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }

    /// Parse `{"k": "v", ...}`; `None` for anything else. Linear in the
    /// input, which the header's own bounds limit.
    pub(super) fn parse_string_map(s: &str) -> Option<Vec<(FastStr, FastStr)>> {
        let mut p = Parser {
            s: s.as_bytes(),
            at: 0,
        };
        let mut out: Vec<(FastStr, FastStr)> = Vec::new();
        p.ws();
        p.eat(b'{')?;
        p.ws();
        if p.peek() == Some(b'}') {
            p.at += 1;
        } else {
            loop {
                p.ws();
                let k = p.string()?;
                p.ws();
                p.eat(b':')?;
                p.ws();
                let v = p.string()?;
                // Later keys win, as in a Go map.
                match out.iter_mut().find(|(ok, _)| *ok == k) {
                    Some(slot) => slot.1 = v.into(),
                    None => out.push((k.into(), v.into())),
                }
                p.ws();
                match p.next()? {
                    b',' => continue,
                    b'}' => break,
                    _ => return None,
                }
            }
        }
        p.ws();
        (p.at == p.s.len()).then_some(out)
    }

    struct Parser<'a> {
        s: &'a [u8],
        at: usize,
    }

    impl Parser<'_> {
        fn peek(&self) -> Option<u8> {
            self.s.get(self.at).copied()
        }

        fn next(&mut self) -> Option<u8> {
            let b = self.peek()?;
            self.at += 1;
            Some(b)
        }

        fn eat(&mut self, b: u8) -> Option<()> {
            (self.next()? == b).then_some(())
        }

        fn ws(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        fn hex4(&mut self) -> Option<u32> {
            let digits = self.s.get(self.at..self.at + 4)?;
            let v = u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()?;
            self.at += 4;
            Some(v)
        }

        fn string(&mut self) -> Option<String> {
            self.eat(b'"')?;
            let mut out = String::new();
            loop {
                // Copy the run up to the next quote or escape whole.
                let run = self.s[self.at..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
                out.push_str(std::str::from_utf8(&self.s[self.at..self.at + run]).ok()?);
                self.at += run;
                match self.next()? {
                    b'"' => return Some(out),
                    b'\\' => {}
                    _ => return None,
                }
                let c = match self.next()? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hi = self.hex4()?;
                        let cp = if (0xD800..0xDC00).contains(&hi) {
                            self.eat(b'\\')?;
                            self.eat(b'u')?;
                            let lo = self.hex4()?;
                            if !(0xDC00..0xE000).contains(&lo) {
                                return None;
                            }
                            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                        } else {
                            hi
                        };
                        char::from_u32(cp)?
                    }
                    _ => return None,
                };
                out.push(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_round_trips_through_json() {
        let biz = BizStatus::new(4001, "m")
            .with_extra("k", "v")
            .with_extra("quote", "a\"b\\c")
            .with_extra("ctl", "line\nnext\u{1}")
            .with_extra("ü", "☃ 🦀");
        let text = biz.extra_json().unwrap();
        assert_eq!(json::parse_string_map(&text).unwrap(), biz.extra());
        assert!(BizStatus::new(1, "m").extra_json().is_none());
    }

    #[test]
    fn json_as_go_writes_it() {
        // Go's encoding/json escapes <, > and & and may use surrogate pairs.
        let got = json::parse_string_map(
            r#" { "a" : "\u003cb\u003e\u0026" , "e":"\ud83e\udd80\/", "a":"later" } "#,
        )
        .unwrap();
        assert_eq!(
            got,
            [
                (FastStr::new("a"), FastStr::new("later")),
                (FastStr::new("e"), FastStr::new("🦀/")),
            ]
        );
        assert_eq!(json::parse_string_map("{}").unwrap(), []);
        for bad in [
            "",
            "{",
            "[]",
            r#"{"a":1}"#,
            r#"{"a":"b",}"#,
            r#"{"a":"b"} x"#,
            r#"{"a":"\ud83e"}"#,
            "{\"a\":\"\n\"}",
            r#"{"a":"\x"}"#,
        ] {
            assert!(json::parse_string_map(bad).is_none(), "{bad:?}");
        }
    }

    fn header(strings: &[(&str, &str)]) -> Header {
        Header::with_strings(0, strings.iter().copied())
    }

    #[test]
    fn header_reading_follows_kitex() {
        assert_eq!(BizStatus::from_header(&header(&[])).unwrap(), None);
        for code in ["0", "x", ""] {
            let h = header(&[(BIZ_STATUS_KEY, code), (BIZ_MESSAGE_KEY, "m")]);
            assert_eq!(BizStatus::from_header(&h).unwrap(), None, "{code:?}");
        }
        let h = header(&[
            (BIZ_STATUS_KEY, "-7"),
            (BIZ_MESSAGE_KEY, "nope"),
            (BIZ_EXTRA_KEY, r#"{"k":"v"}"#),
        ]);
        let biz = BizStatus::from_header(&h).unwrap().unwrap();
        assert_eq!((biz.code(), biz.message()), (-7, "nope"));
        assert_eq!(biz.extra_value("k"), Some("v"));
        let h = header(&[(BIZ_STATUS_KEY, "3"), (BIZ_EXTRA_KEY, "{oops")]);
        let e = BizStatus::from_header(&h).unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument);
    }

    #[test]
    fn a_status_carries_its_business_status() {
        let status: Status = BizStatus::new(9, "out of stock")
            .with_extra("sku", "42")
            .into();
        assert_eq!(status.code(), Code::Unknown);
        assert_eq!(status.message(), "out of stock");
        // A clone keeps it: the source is shared.
        let copy = status.clone();
        let biz = BizStatus::of(&copy).unwrap();
        assert_eq!((biz.code(), biz.extra_value("sku")), (9, Some("42")));
        assert!(BizStatus::of(&Status::unknown("plain")).is_none());
    }
}
