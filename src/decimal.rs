//! Numbers in decimal without `core::fmt`. The call path writes numbers on every call (the
//! ring's `expires_at`, a push's `content-length`, the presence read's score bound), and
//! `format!` costs several times the digits themselves: its formatter machinery plus a
//! string grown as it goes (~1,000 instructions for a timestamp, docs/performance.md).

/// `n` in decimal, zero-padded to at least `width` digits (at most 20), written at the end
/// of `buffer`.
pub fn digits(mut n: u64, width: usize, buffer: &mut [u8; 20]) -> &[u8] {
    buffer.fill(b'0');
    let mut at = buffer.len();
    loop {
        at -= 1;
        buffer[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buffer[at.min(buffer.len() - width.min(buffer.len()))..]
}

/// Appends `n` in decimal, zero-padded to at least `width` digits (at most 20).
pub fn push(text: &mut String, n: u64, width: usize) {
    let mut buffer = [0; 20];
    text.extend(
        digits(n, width, &mut buffer)
            .iter()
            .map(|&digit| char::from(digit)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_match_the_formatter() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, 1_795_823_895_000, u64::MAX] {
            for width in [0, 1, 2, 3, 4, 13, 20] {
                let mut buffer = [0; 20];
                assert_eq!(
                    digits(n, width, &mut buffer),
                    format!("{n:0width$}").as_bytes(),
                    "{n} at width {width}"
                );
                let mut text = String::from("x");
                push(&mut text, n, width);
                assert_eq!(text, format!("x{n:0width$}"));
            }
        }
    }

    #[test]
    fn a_buffer_used_before_leaves_no_digits_behind() {
        let mut buffer = [0; 20];
        digits(u64::MAX, 0, &mut buffer);
        assert_eq!(digits(7, 3, &mut buffer), b"007");
    }
}
