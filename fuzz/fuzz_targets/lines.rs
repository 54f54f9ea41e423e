//! The line splitter: the same lines whatever the chunking (the first
//! bytes of the input choose the cuts), none blank, none over the limit.

use tradingbot::bot::signal::MAX_LINE_BYTES;
use tradingbot::bot::intake::lines::{Line, LineSplitter, Lines};

fn main() {
    afl::fuzz!(|data: &[u8]| {
        let Some((&cuts, bytes)) = data.split_first() else {
            return;
        };
        let cuts = usize::from(cuts % 8).min(bytes.len());
        let (cut_bytes, bytes) = bytes.split_at(cuts);
        let mut whole = Lines::default();
        let mut splitter = LineSplitter::default();
        splitter.push(bytes, &mut whole);
        splitter.finish(&mut whole);
        let mut cuts: Vec<usize> = cut_bytes
            .iter()
            .map(|cut| usize::from(*cut) * bytes.len() / 255)
            .collect();
        cuts.sort_unstable();
        let mut pieces = Lines::default();
        let mut splitter = LineSplitter::default();
        let mut start = 0;
        for cut in cuts.into_iter().chain([bytes.len()]) {
            splitter.push(&bytes[start..cut], &mut pieces);
            start = cut;
        }
        splitter.finish(&mut pieces);
        assert_eq!(whole, pieces);
        for line in whole.iter() {
            if let Line::Bytes(line) = line {
                assert!(line.len() <= MAX_LINE_BYTES && !line.contains(&b'\n'));
                assert!(line.iter().any(|byte| !byte.is_ascii_whitespace()));
            }
        }
    });
}
