//! The protobuf wire format: varints, tags and length-delimited fields, read from a
//! byte slice without copying.

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum WireError {
    #[error("truncated input at byte {offset}")]
    Truncated { offset: usize },
    #[error("varint longer than 10 bytes at byte {offset}")]
    VarintTooLong { offset: usize },
    #[error("unsupported wire type {wire_type} at byte {offset}")]
    WireType { wire_type: u8, offset: usize },
    #[error("invalid field number 0 at byte {offset}")]
    FieldZero { offset: usize },
}

/// One field as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// Iterates over the `(field number, value)` pairs of one encoded message.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or(WireError::Truncated { offset: self.pos })?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(WireError::VarintTooLong { offset: start })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).filter(|end| *end <= self.buf.len());
        let end = end.ok_or(WireError::Truncated { offset: self.buf.len() })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// The next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let offset = self.pos;
        let key = self.varint()?;
        // Field numbers are at most 2^29-1, so the cast cannot lose bits we care about.
        let number = (key >> 3) as u32;
        if number == 0 {
            return Err(WireError::FieldZero { offset });
        }
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(fixed(self.take(8)?))),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated { offset })?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(fixed(self.take(4)?))),
            // Groups (3, 4) are proto2 relics that Kubernetes never emits.
            other => return Err(WireError::WireType { wire_type: other as u8, offset }),
        };
        Ok(Some((number, value)))
    }
}

fn fixed<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

/// Encoding helpers for tests in this crate and its integration tests.
#[cfg(test)]
pub mod encode {
    pub fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn bytes_field(number: u32, data: &[u8], out: &mut Vec<u8>) {
        varint(u64::from(number) << 3 | 2, out);
        varint(data.len() as u64, out);
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_each_wire_type() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 0x02, b'h', b'i', // 3: bytes "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
        ];
        let mut r = Reader::new(&buf);
        assert_eq!(r.next_field(), Ok(Some((1, Value::Varint(150)))));
        assert_eq!(r.next_field(), Ok(Some((2, Value::Fixed64(1)))));
        assert_eq!(r.next_field(), Ok(Some((3, Value::Bytes(b"hi")))));
        assert_eq!(r.next_field(), Ok(Some((4, Value::Fixed32(2)))));
        assert_eq!(r.next_field(), Ok(None));
    }

    #[test]
    fn malformed_input_is_an_error() {
        let cases: &[(&[u8], WireError)] = &[
            (&[0x08], WireError::Truncated { offset: 1 }),
            (&[0x08, 0x80], WireError::Truncated { offset: 2 }),
            (&[0x0a, 0x05, b'a'], WireError::Truncated { offset: 3 }),
            (&[0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], WireError::Truncated { offset: 11 }),
            (
                &[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                WireError::VarintTooLong { offset: 1 },
            ),
            (&[0x0b], WireError::WireType { wire_type: 3, offset: 0 }),
            (&[0x00, 0x00], WireError::FieldZero { offset: 0 }),
        ];
        for (input, want) in cases {
            let mut r = Reader::new(input);
            let got = loop {
                match r.next_field() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{input:?}: expected an error"),
                    Err(e) => break e,
                }
            };
            assert_eq!(&got, want, "{input:?}");
        }
    }
}
