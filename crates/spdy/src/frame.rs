//! SPDY/3.1 frames: the byte layout, and header blocks compressed with one zlib stream
//! per direction (primed with the SPDY dictionary, flushed with a sync flush per block).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::Error;

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
/// Control frames and data frames are limited by their 24-bit length field.
pub const MAX_FRAME_LEN: usize = (1 << 24) - 1;
/// Header blocks larger than this are refused (they would only come from a broken peer).
const MAX_HEADER_BLOCK: usize = 1 << 20;

pub type Headers = Vec<(String, String)>;

/// RST_STREAM status codes used here.
pub mod rst {
    pub const PROTOCOL_ERROR: u32 = 1;
    pub const REFUSED_STREAM: u32 = 3;
    pub const CANCEL: u32 = 5;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        id: u32,
        associated: u32,
        priority: u8,
        fin: bool,
        headers: Headers,
    },
    SynReply {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    RstStream {
        id: u32,
        status: u32,
    },
    Settings,
    Ping {
        id: u32,
    },
    GoAway {
        last_good: u32,
        status: u32,
    },
    Headers {
        id: u32,
        fin: bool,
        headers: Headers,
    },
    WindowUpdate {
        id: u32,
        delta: u32,
    },
    Data {
        id: u32,
        fin: bool,
        data: Bytes,
    },
    /// A control frame type this implementation ignores (the spec says to).
    Unknown,
}

/// Compresses outgoing header blocks.
pub struct HeaderEncoder {
    z: Compress,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        let mut z = Compress::new(Compression::default(), true);
        // Priming cannot fail on a fresh stream.
        let _ = z.set_dictionary(&crate::dictionary::dictionary());
        HeaderEncoder { z }
    }
}

impl HeaderEncoder {
    pub fn encode(&mut self, headers: &Headers) -> Result<Vec<u8>, Error> {
        let mut raw = Vec::new();
        raw.put_u32(headers.len() as u32);
        for (k, v) in headers {
            raw.put_u32(k.len() as u32);
            raw.extend_from_slice(k.to_ascii_lowercase().as_bytes());
            raw.put_u32(v.len() as u32);
            raw.extend_from_slice(v.as_bytes());
        }
        let mut out = Vec::with_capacity(raw.len() + 64);
        let mut input = &raw[..];
        loop {
            out.reserve(256);
            let before = self.z.total_in();
            self.z
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| Error::Protocol(format!("header compression failed: {e}")))?;
            input = &input[(self.z.total_in() - before) as usize..];
            // A sync flush is complete when the input is used up and there was room left.
            if input.is_empty() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// Decompresses incoming header blocks.
pub struct HeaderDecoder {
    z: Decompress,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        HeaderDecoder { z: Decompress::new(true) }
    }
}

impl HeaderDecoder {
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, Error> {
        let mut out = Vec::with_capacity(block.len() * 4 + 64);
        let mut input = block;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity().max(256));
            }
            let (before, produced) = (self.z.total_in(), out.len());
            match self.z.decompress_vec(input, &mut out, FlushDecompress::Sync) {
                Ok(Status::Ok | Status::BufError | Status::StreamEnd) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z
                        .set_dictionary(&crate::dictionary::dictionary())
                        .map_err(|e| Error::Protocol(format!("header dictionary refused: {e}")))?;
                }
                Err(e) => return Err(Error::Protocol(format!("header block does not inflate: {e}"))),
            }
            let used = (self.z.total_in() - before) as usize;
            if used == 0 && out.len() == produced && out.len() < out.capacity() && !input.is_empty() {
                return Err(Error::Protocol("header block does not inflate".into()));
            }
            input = &input[used..];
            if out.len() > MAX_HEADER_BLOCK {
                return Err(Error::Protocol("header block too large".into()));
            }
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        parse_headers(&out)
    }
}

fn parse_headers(mut b: &[u8]) -> Result<Headers, Error> {
    let bad = || Error::Protocol("malformed header block".into());
    let take = |b: &mut &[u8]| -> Result<String, Error> {
        if b.len() < 4 {
            return Err(bad());
        }
        let n = b.get_u32() as usize;
        if b.len() < n {
            return Err(bad());
        }
        let s = String::from_utf8_lossy(&b[..n]).into_owned();
        b.advance(n);
        Ok(s)
    };
    if b.len() < 4 {
        return Err(bad());
    }
    let count = b.get_u32();
    let mut headers = Vec::new();
    for _ in 0..count {
        let k = take(&mut b)?;
        let v = take(&mut b)?;
        // Several values of one name travel NUL-separated.
        for v in v.split('\0') {
            headers.push((k.clone(), v.to_string()));
        }
    }
    Ok(headers)
}

/// The first value of header `name` (names are lowercase on the wire).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Splits one frame off the front of `buf` when it is complete.
pub fn decode(buf: &mut BytesMut, headers: &mut HeaderDecoder) -> Result<Option<Frame>, Error> {
    if buf.len() < 8 {
        return Ok(None);
    }
    let len = (usize::from(buf[5]) << 16) | (usize::from(buf[6]) << 8) | usize::from(buf[7]);
    if buf.len() < 8 + len {
        return Ok(None);
    }
    let mut frame = buf.split_to(8 + len).freeze();
    let control = frame[0] & 0x80 != 0;
    let flags = frame[4];
    let fin = flags & FLAG_FIN != 0;
    if !control {
        let id = frame.get_u32() & 0x7fff_ffff;
        frame.advance(4);
        return Ok(Some(Frame::Data { id, fin, data: frame }));
    }
    let version = frame.get_u16() & 0x7fff;
    if version != VERSION {
        return Err(Error::Protocol(format!("unsupported spdy version {version}")));
    }
    let kind = frame.get_u16();
    frame.advance(4);
    let short = || Error::Protocol(format!("control frame {kind} too short"));
    let need = |frame: &Bytes, n: usize| if frame.len() < n { Err(short()) } else { Ok(()) };
    Ok(Some(match kind {
        1 => {
            need(&frame, 10)?;
            let id = frame.get_u32() & 0x7fff_ffff;
            let associated = frame.get_u32() & 0x7fff_ffff;
            let priority = frame.get_u8() >> 5;
            frame.advance(1);
            Frame::SynStream { id, associated, priority, fin, headers: headers.decode(&frame)? }
        }
        2 => {
            need(&frame, 4)?;
            let id = frame.get_u32() & 0x7fff_ffff;
            Frame::SynReply { id, fin, headers: headers.decode(&frame)? }
        }
        3 => {
            need(&frame, 8)?;
            Frame::RstStream { id: frame.get_u32() & 0x7fff_ffff, status: frame.get_u32() }
        }
        4 => Frame::Settings,
        6 => {
            need(&frame, 4)?;
            Frame::Ping { id: frame.get_u32() }
        }
        7 => {
            need(&frame, 8)?;
            Frame::GoAway { last_good: frame.get_u32() & 0x7fff_ffff, status: frame.get_u32() }
        }
        8 => {
            need(&frame, 4)?;
            let id = frame.get_u32() & 0x7fff_ffff;
            Frame::Headers { id, fin, headers: headers.decode(&frame)? }
        }
        9 => {
            need(&frame, 8)?;
            Frame::WindowUpdate { id: frame.get_u32() & 0x7fff_ffff, delta: frame.get_u32() & 0x7fff_ffff }
        }
        _ => Frame::Unknown,
    }))
}

fn control(out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]) {
    out.put_u16(0x8000 | VERSION);
    out.put_u16(kind);
    out.put_u8(flags);
    out.put_uint(payload.len() as u64, 3);
    out.extend_from_slice(payload);
}

/// Appends `frame`'s bytes to `out`.
pub fn encode(frame: &Frame, out: &mut BytesMut, headers: &mut HeaderEncoder) -> Result<(), Error> {
    let fin_flag = |fin: bool| if fin { FLAG_FIN } else { 0 };
    match frame {
        Frame::SynStream { id, associated, priority, fin, headers: h } => {
            let mut p = Vec::new();
            p.put_u32(*id);
            p.put_u32(*associated);
            p.put_u8(priority << 5);
            p.put_u8(0);
            p.extend_from_slice(&headers.encode(h)?);
            control(out, 1, fin_flag(*fin), &p);
        }
        Frame::SynReply { id, fin, headers: h } => {
            let mut p = Vec::new();
            p.put_u32(*id);
            p.extend_from_slice(&headers.encode(h)?);
            control(out, 2, fin_flag(*fin), &p);
        }
        Frame::Headers { id, fin, headers: h } => {
            let mut p = Vec::new();
            p.put_u32(*id);
            p.extend_from_slice(&headers.encode(h)?);
            control(out, 8, fin_flag(*fin), &p);
        }
        Frame::RstStream { id, status } => {
            control(out, 3, 0, &[id.to_be_bytes(), status.to_be_bytes()].concat());
        }
        Frame::Settings => control(out, 4, 0, &0u32.to_be_bytes()),
        Frame::Ping { id } => control(out, 6, 0, &id.to_be_bytes()),
        Frame::GoAway { last_good, status } => {
            control(out, 7, 0, &[last_good.to_be_bytes(), status.to_be_bytes()].concat());
        }
        Frame::WindowUpdate { id, delta } => {
            control(out, 9, 0, &[id.to_be_bytes(), delta.to_be_bytes()].concat());
        }
        Frame::Data { id, fin, data } => {
            if data.len() > MAX_FRAME_LEN {
                return Err(Error::Protocol("data frame too large".into()));
            }
            out.put_u32(id & 0x7fff_ffff);
            out.put_u8(fin_flag(*fin));
            out.put_uint(data.len() as u64, 3);
            out.extend_from_slice(data);
        }
        Frame::Unknown => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(frames: &[Frame]) -> Vec<Frame> {
        let (mut enc, mut dec) = (HeaderEncoder::default(), HeaderDecoder::default());
        let mut buf = BytesMut::new();
        for f in frames {
            encode(f, &mut buf, &mut enc).unwrap();
        }
        let mut out = Vec::new();
        // Feed byte by byte: frames must come out only when complete.
        let mut incoming = BytesMut::new();
        for b in buf.iter() {
            incoming.put_u8(*b);
            while let Some(f) = decode(&mut incoming, &mut dec).unwrap() {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn frames_survive_a_roundtrip_with_one_compression_context() {
        let h = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let frames = vec![
            Frame::SynStream { id: 1, associated: 0, priority: 0, fin: false, headers: h(&[("streamtype", "error")]) },
            Frame::SynStream {
                id: 3,
                associated: 0,
                priority: 0,
                fin: false,
                headers: h(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]),
            },
            Frame::SynReply { id: 3, fin: false, headers: Vec::new() },
            Frame::Data { id: 3, fin: true, data: Bytes::from_static(b"hello") },
            Frame::RstStream { id: 1, status: rst::CANCEL },
            Frame::Ping { id: 7 },
            Frame::WindowUpdate { id: 3, delta: 65536 },
            Frame::GoAway { last_good: 3, status: 0 },
        ];
        assert_eq!(roundtrip(&frames), frames);
    }

    #[test]
    fn multi_valued_headers_split_on_nul() {
        let raw = [&2u32.to_be_bytes()[..], &1u32.to_be_bytes(), b"a", &3u32.to_be_bytes(), b"x\0y"];
        let mut block = raw.concat();
        block.extend_from_slice(&1u32.to_be_bytes());
        block.extend_from_slice(b"b");
        block.extend_from_slice(&0u32.to_be_bytes());
        let h = parse_headers(&block).unwrap();
        assert_eq!(h, vec![("a".into(), "x".into()), ("a".into(), "y".into()), ("b".into(), String::new())]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut dec = HeaderDecoder::default();
        assert!(dec.decode(b"\x00\x01garbage").is_err());
        assert!(parse_headers(&[0, 0, 0, 5, 0, 0]).is_err());
        let mut buf = BytesMut::from(&[0x80, 0x02, 0, 1, 0, 0, 0, 0][..]);
        assert!(decode(&mut buf, &mut dec).is_err());
        let mut buf = BytesMut::from(&[0x80, 0x03, 0, 1, 0, 0, 0, 2, 0, 0][..]);
        assert!(decode(&mut buf, &mut dec).is_err());
    }
}
