//! The bulk decoder: a stream decodes to the same records (or the same error) whether it arrives
//! whole, split in two at any point, or one byte at a time; and what it accepts re-encodes to
//! exactly the bytes it came from (the format has one encoding per record list).

use bytes::BytesMut;
use kvproto::bulk::{BulkCodec, BulkFrame, BulkRecord};
use tokio_util::codec::Decoder;

/// The value limit the decoder runs with: small, so `ValueTooLarge` is reachable.
pub const MAX_VALUE_BYTES: usize = 1024;

/// Records, or the error's message (`BulkError` has no `PartialEq`: it can hold an io error).
type Outcome = Result<Vec<BulkRecord>, String>;

pub fn check(data: &[u8]) {
    let whole: Outcome = BulkCodec::decode_all(data, MAX_VALUE_BYTES).map_err(|e| e.to_string());
    let split = split_point(data);
    let halves = streamed(&[&data[..split], &data[split..]]);
    assert_eq!(
        halves,
        whole,
        "split at {split} of {} decodes differently",
        data.len()
    );
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(
        streamed(&bytes),
        whole,
        "byte-by-byte decoding differs from whole"
    );
    if let Ok(records) = whole {
        for r in &records {
            let len = r.value.as_ref().map_or(0, |v| v.len());
            assert!(len <= MAX_VALUE_BYTES, "value of {len} bytes got through");
        }
        let encoded = BulkCodec::encode_all(&records);
        assert_eq!(
            &encoded[..],
            data,
            "an accepted stream does not re-encode to its own bytes"
        );
    }
}

/// Feeds `chunks` to one decoder in order, as a body arriving over the network would.
fn streamed(chunks: &[&[u8]]) -> Outcome {
    let mut codec = BulkCodec::new(MAX_VALUE_BYTES);
    let mut buf = BytesMut::new();
    let mut records = Vec::new();
    let mut push = |frame: BulkFrame| {
        if let BulkFrame::Record(r) = frame {
            records.push(r);
        }
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        while let Some(frame) = codec.decode(&mut buf).map_err(|e| e.to_string())? {
            push(frame);
        }
    }
    while let Some(frame) = codec.decode_eof(&mut buf).map_err(|e| e.to_string())? {
        push(frame);
    }
    Ok(records)
}

/// A split point that depends on every byte (FNV-1a), so the fuzzer reaches them all.
fn split_point(data: &[u8]) -> usize {
    let hash = data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    usize::try_from(hash % (data.len() as u64 + 1)).unwrap_or(0)
}
