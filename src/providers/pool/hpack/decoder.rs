//! Decoding a header block (RFC 7541 §6): the answers' headers, with the dynamic table kept
//! in step with the peer's encoder across the connection's blocks.

use super::DecodeError;
use super::huffman;
use super::table::{DynamicTable, entry_size};

/// One connection's HPACK decoder. Every error ends the connection (HTTP/2's
/// `COMPRESSION_ERROR`): a block decoded halfway leaves the table out of step with the
/// peer's, so nothing after it could be trusted.
#[derive(Debug)]
pub struct Decoder {
    /// The dynamic table, as the peer's encoder has built it.
    table: DynamicTable,
    /// The largest table our `SETTINGS_HEADER_TABLE_SIZE` lets the peer choose.
    max_table_size: usize,
    /// The most a block may decode to, counted as RFC 9113 §6.5.2 counts
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`: a hostile peer cannot make us hold more.
    max_list_size: usize,
    /// A literal's name and value, reused from field to field.
    name: Vec<u8>,
    value: Vec<u8>,
}

impl Decoder {
    /// A decoder for a connection whose SETTINGS allowed the peer a table of
    /// `max_table_size` bytes (HTTP/2's default: 4,096) and blocks of `max_list_size`.
    pub fn new(max_table_size: usize, max_list_size: usize) -> Decoder {
        Decoder {
            table: DynamicTable::new(max_table_size),
            max_table_size,
            max_list_size,
            name: Vec::new(),
            value: Vec::new(),
        }
    }

    /// Decodes one whole header block (a HEADERS frame's fragment and its CONTINUATIONs),
    /// handing each field to `field` in order.
    pub fn decode(
        &mut self,
        mut block: &[u8],
        mut field: impl FnMut(&[u8], &[u8]),
    ) -> Result<(), DecodeError> {
        let mut list_size = 0usize;
        let mut first = true;
        while let Some(&head) = block.first() {
            if head & 0x80 != 0 {
                // Indexed field (§6.1).
                let index = read_int(&mut block, 7)?;
                let (name, value) = self.table.get(index).ok_or(DecodeError::BadIndex(index))?;
                list_size += entry_size(name, value);
                self.check_list(list_size)?;
                field(name, value);
            } else if head & 0x40 != 0 {
                // Literal with incremental indexing (§6.2.1).
                self.literal(&mut block, 6)?;
                list_size += entry_size(&self.name, &self.value);
                self.check_list(list_size)?;
                field(&self.name, &self.value);
                self.table.insert(&self.name, &self.value);
            } else if head & 0x20 != 0 {
                // Dynamic table size update (§6.3): only before the block's first field.
                if !first {
                    return Err(DecodeError::TableSizeUpdateLate);
                }
                let size = read_int(&mut block, 5)?;
                if size > self.max_table_size {
                    return Err(DecodeError::TableSizeTooLarge(size));
                }
                self.table.resize(size);
                continue;
            } else {
                // Literal without indexing (0000) or never indexed (0001) (§6.2.2, §6.2.3).
                self.literal(&mut block, 4)?;
                list_size += entry_size(&self.name, &self.value);
                self.check_list(list_size)?;
                field(&self.name, &self.value);
            }
            first = false;
        }
        Ok(())
    }

    /// The dynamic table (tests compare it with the RFC's examples).
    pub fn table(&self) -> &DynamicTable {
        &self.table
    }

    /// Reads a literal's name (an index, or a string after a zero index) and value into
    /// `self.name` and `self.value`.
    fn literal(&mut self, block: &mut &[u8], prefix: u8) -> Result<(), DecodeError> {
        let index = read_int(block, prefix)?;
        self.name.clear();
        self.value.clear();
        if index == 0 {
            read_string(block, &mut self.name, self.max_list_size)?;
        } else {
            let (name, _) = self.table.get(index).ok_or(DecodeError::BadIndex(index))?;
            self.name.extend_from_slice(name);
        }
        read_string(block, &mut self.value, self.max_list_size)
    }

    fn check_list(&self, size: usize) -> Result<(), DecodeError> {
        if size > self.max_list_size {
            return Err(DecodeError::HeaderListTooLarge(self.max_list_size));
        }
        Ok(())
    }
}

/// Reads an integer with an N-bit prefix (RFC 7541 §5.1) from the front of `block`.
/// Values past 2^35 are refused: no size or index of a real peer comes near.
pub(super) fn read_int(block: &mut &[u8], prefix: u8) -> Result<usize, DecodeError> {
    let (&head, rest) = block.split_first().ok_or(DecodeError::Truncated)?;
    *block = rest;
    let mask = ((1u16 << prefix) - 1) as u8;
    let mut value = usize::from(head & mask);
    if value < usize::from(mask) {
        return Ok(value);
    }
    let mut shift = 0;
    loop {
        let (&byte, rest) = block.split_first().ok_or(DecodeError::Truncated)?;
        *block = rest;
        if shift > 28 {
            return Err(DecodeError::IntegerOverflow);
        }
        value += usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

/// Reads a string literal (RFC 7541 §5.2) from the front of `block` and appends it, decoded,
/// to `out`. One longer than `limit` is refused before it is decoded.
fn read_string(block: &mut &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), DecodeError> {
    let huffman = block.first().ok_or(DecodeError::Truncated)? & 0x80 != 0;
    let len = read_int(block, 7)?;
    if len > limit {
        return Err(DecodeError::HeaderListTooLarge(limit));
    }
    if len > block.len() {
        return Err(DecodeError::Truncated);
    }
    let (bytes, rest) = block.split_at(len);
    *block = rest;
    if huffman {
        huffman::decode(bytes, out)
    } else {
        out.extend_from_slice(bytes);
        Ok(())
    }
}
