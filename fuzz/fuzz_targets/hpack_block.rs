//! A header block through the HPACK decoder (what a push service's answers are read with):
//! any bytes, never a panic, and never more held than the list limit. Then the same bytes,
//! taken as fields, through the encoder: they always decode back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringcast::providers::pool::hpack::Decoder;
use ringcast::providers::pool::hpack::encoder::{self, Coding, Indexing, Name};

const LIST_LIMIT: usize = 4096;

/// A field for the encoder: name, value, and whether to Huffman-code it where shorter.
type Field = (Vec<u8>, Vec<u8>, bool);

fuzz_target!(|input: (&[u8], Vec<Field>)| {
    let (block, fields) = input;
    // Decoding: twice through one decoder, so a block also meets the table the first built.
    let mut decoder = Decoder::new(256, LIST_LIMIT);
    for _ in 0..2 {
        let mut held = 0;
        let decoded = decoder.decode(block, |name, value| held += name.len() + value.len() + 32);
        if decoded.is_ok() {
            assert!(held <= LIST_LIMIT);
        }
    }

    // Encoding: literal names, raw or Huffman-coded, decode to what went in.
    let mut block = Vec::new();
    encoder::table_size_update(&mut block, 0);
    for (name, value, huffman) in &fields {
        let coding = if *huffman {
            Coding::Shortest
        } else {
            Coding::Raw
        };
        encoder::literal(
            &mut block,
            Name::Literal(name),
            value,
            Indexing::Without,
            coding,
        );
    }
    let mut out = Vec::new();
    let mut decoder = Decoder::new(4096, usize::MAX);
    decoder
        .decode(&block, |name, value| {
            out.push((name.to_vec(), value.to_vec()))
        })
        .expect("the encoder's block decodes");
    let want: Vec<_> = fields.into_iter().map(|(n, v, _)| (n, v)).collect();
    assert_eq!(out, want);
});
