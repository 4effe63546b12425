//! How much to read next from a tunnel's stream ([`ReadSize`]): a size that follows the
//! traffic, so that a bulk transfer reads in large pieces while a license call's few bytes
//! never take a large buffer (one allocated per read attempt and freed when it is drained).

/// A read size that doubles (up to its largest) while reads fill it and halves (down to its
/// smallest) after reads that use less than a quarter of it. It starts at its smallest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadSize {
    next: usize,
    smallest: usize,
    largest: usize,
}

impl ReadSize {
    /// Sizes between `smallest` and `largest` (at least 1; `smallest` at most `largest`).
    #[must_use]
    pub fn new(smallest: usize, largest: usize) -> Self {
        let largest = largest.max(1);
        let smallest = smallest.clamp(1, largest);
        Self {
            next: smallest,
            smallest,
            largest,
        }
    }

    /// The next read's size.
    #[must_use]
    pub fn get(&self) -> usize {
        self.next
    }

    /// Takes note of a read of `n` bytes of the size [`Self::get`] gave (or more, when the
    /// caller's buffer was larger).
    pub fn adapt(&mut self, n: usize) {
        if n >= self.next {
            self.next = (self.next * 2).min(self.largest);
        } else if n < self.next / 4 {
            self.next = (self.next / 2).max(self.smallest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_reads_fill_it_and_shrinks_after_small_ones() {
        let mut size = ReadSize::new(4, 32);
        assert_eq!(size.get(), 4);
        for want in [8, 16, 32, 32] {
            size.adapt(size.get());
            assert_eq!(size.get(), want);
        }
        size.adapt(8);
        assert_eq!(size.get(), 32, "a quarter is not little enough to shrink");
        size.adapt(7);
        assert_eq!(size.get(), 16);
        for _ in 0..4 {
            size.adapt(0);
        }
        assert_eq!(size.get(), 4, "never below the smallest");
    }

    #[test]
    fn bounds_are_ordered_and_positive() {
        assert_eq!(ReadSize::new(8, 2).get(), 2);
        assert_eq!(ReadSize::new(0, 0).get(), 1);
    }
}
