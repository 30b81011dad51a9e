//! What a rank holds for the whole run in bounded memory: spill files in `$TMPDIR`, and series
//! that keep their last values in memory and the rest in a spill file.
//!
//! A run's observables grow with model time (a moment sample every millisecond, an input
//! balance bin, a histogram every few milliseconds); held in memory, a long run's peak grows
//! with it. A [`Series`] holds at most [`SERIES_BUFFER`] bytes; beyond that it appends them
//! to its own spill file, and its writers read it back chunk by chunk ([`Stored`]). The values
//! are the same, bit for bit, whether or not anything was spilled. A spill file that cannot be
//! created or written loses nothing: the series warns once and keeps its values in memory.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A rank's scratch file in `$TMPDIR`, append-only, deleted when dropped.
pub struct SpillFile {
    file: File,
    path: PathBuf,
    /// Bytes written so far (the next append's offset).
    pub end: u64,
}

impl SpillFile {
    /// Creates `lapicque-<what>-<pid>-<n>.bin` in the temporary directory (`n` counts the spill
    /// files of this process).
    pub fn create(what: &str) -> Result<Self, String> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("lapicque-{what}-{}-{n}.bin", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| {
                format!(
                    "cannot create the {what} spill file {}: {e}",
                    path.display()
                )
            })?;
        Ok(SpillFile { file, path, end: 0 })
    }

    /// Appends `bytes`; returns the offset they start at.
    pub fn append(&mut self, bytes: &[u8]) -> Result<u64, String> {
        self.file
            .write_all_at(bytes, self.end)
            .map_err(|e| format!("cannot write the spill file {}: {e}", self.path.display()))?;
        let at = self.end;
        self.end += bytes.len() as u64;
        Ok(at)
    }

    /// Fills `bytes` from `offset`.
    pub fn read(&self, bytes: &mut [u8], offset: u64) -> Result<(), String> {
        self.file
            .read_exact_at(bytes, offset)
            .map_err(|e| format!("cannot read the spill file {}: {e}", self.path.display()))
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A value a [`Series`] can hold: fixed size, little-endian bytes in its spill file, and
/// 64-bit words in HDF5 (for types HDF5 does not have).
pub trait Word: Copy + Default + 'static {
    const BYTES: usize;
    /// 64-bit words per value.
    const WORDS: usize = Self::BYTES.div_ceil(8);
    fn put(self, out: &mut [u8]);
    fn get(bytes: &[u8]) -> Self;
    /// Appends the value as [`Word::WORDS`] words (low first).
    fn words(self, out: &mut Vec<u64>) {
        let mut b = [0u8; 16];
        self.put(&mut b[..Self::BYTES]);
        out.extend(
            b[..8 * Self::WORDS]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
        );
    }
    /// The value [`Word::words`] wrote.
    fn from_words(words: &[u64]) -> Self {
        let mut b = [0u8; 16];
        for (c, w) in b.chunks_exact_mut(8).zip(words) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        Self::get(&b[..Self::BYTES])
    }
}

macro_rules! word {
    ($($t:ty),*) => {$(
        impl Word for $t {
            const BYTES: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("one value's bytes"))
            }
        }
    )*};
}
word!(f64, u64, u32, i128);

/// Bytes a [`Series`] holds in memory before it spills (at least one row).
pub const SERIES_BUFFER: usize = 1 << 16;

/// Values held in memory or spilled, read back in order, one chunk at a time: what a writer
/// streams into a dataset (a replicated dataset of an output or a checkpoint).
pub trait Stored<T> {
    /// The number of values.
    fn count(&self) -> usize;
    /// Calls `f` with consecutive chunks of the values, in order, each whole rows.
    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String>;
}

impl<T> Stored<T> for [T] {
    fn count(&self) -> usize {
        self.len()
    }
    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String> {
        f(self)
    }
}

impl<T> Stored<T> for Vec<T> {
    fn count(&self) -> usize {
        self.len()
    }
    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String> {
        f(self)
    }
}

impl<T, S: Stored<T> + ?Sized> Stored<T> for &S {
    fn count(&self) -> usize {
        (**self).count()
    }
    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String> {
        (**self).each_chunk(f)
    }
}

/// `count` values made chunk by chunk by a function that hands each chunk to its argument
/// (values computed from a series as it is read back).
pub struct Generated<F>(pub usize, pub F);

impl<T, F> Stored<T> for Generated<F>
where
    F: Fn(&mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String>,
{
    fn count(&self) -> usize {
        self.0
    }
    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String> {
        (self.1)(f)
    }
}

/// Several stored series one after the other (a checkpoint keeps a series per population
/// in one dataset).
pub struct Concat<'a, S>(pub &'a [S]);

impl<T, S: Stored<T>> Stored<T> for Concat<'_, S> {
    fn count(&self) -> usize {
        self.0.iter().map(Stored::count).sum()
    }
    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String> {
        self.0.iter().try_for_each(|s| s.each_chunk(f))
    }
}

/// An append-only table of rows of `width` values: the last ones in memory (at most
/// [`SERIES_BUFFER`] bytes), the earlier ones in a spill file.
pub struct Series<T: Word> {
    width: usize,
    /// Values not spilled (whole rows).
    tail: Vec<T>,
    /// Values the tail holds before it is spilled.
    limit: usize,
    spill: Option<SpillFile>,
    /// Values in the spill file.
    spilled: usize,
}

impl<T: Word> Series<T> {
    /// An empty series of rows of `width` values (`width` 0 holds nothing).
    pub fn new(width: usize) -> Self {
        Self::with_buffer(width, SERIES_BUFFER)
    }

    /// An empty series that holds up to `bytes` in memory (rounded to whole rows, at least one).
    pub fn with_buffer(width: usize, bytes: usize) -> Self {
        let row = width.max(1);
        Series {
            width,
            tail: Vec::new(),
            limit: (bytes / (row * T::BYTES)).max(1) * row,
            spill: None,
            spilled: 0,
        }
    }

    /// A series holding `values` (whole rows), in memory.
    pub fn from_vec(width: usize, values: Vec<T>) -> Self {
        Series {
            tail: values,
            limit: usize::MAX,
            ..Self::new(width)
        }
    }

    pub fn width(&self) -> usize {
        self.width
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.count().checked_div(self.width).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// Appends values (whole rows).
    pub fn extend(&mut self, values: impl IntoIterator<Item = T>) {
        self.tail.extend(values);
        debug_assert_eq!(self.tail.len() % self.width.max(1), 0, "whole rows");
        if self.tail.len() >= self.limit {
            if let Err(e) = self.spill_tail() {
                // Nothing is lost: the values stay in memory, and so do the later ones.
                static WARNED: AtomicBool = AtomicBool::new(false);
                if !WARNED.swap(true, Ordering::Relaxed) {
                    eprintln!(
                        "lapicque: warning: {e}; this rank keeps its observables' series in memory"
                    );
                }
                self.limit = usize::MAX;
            }
        }
    }

    pub fn push(&mut self, x: T) {
        self.extend([x]);
    }

    fn spill_tail(&mut self) -> Result<(), String> {
        if self.spill.is_none() {
            self.spill = Some(SpillFile::create("series")?);
        }
        let mut bytes = vec![0u8; self.tail.len() * T::BYTES];
        for (x, out) in self.tail.iter().zip(bytes.chunks_exact_mut(T::BYTES)) {
            x.put(out);
        }
        self.spill.as_mut().expect("created above").append(&bytes)?;
        self.spilled += self.tail.len();
        self.tail.clear();
        Ok(())
    }

    /// Every value, in memory (for tests and small series).
    pub fn to_vec(&self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.count());
        self.each_chunk(&mut |c| {
            all.extend_from_slice(c);
            Ok(())
        })
        .expect("the series' spill file can be read back");
        all
    }

    /// Calls `f` with each row in order (reading the spill file back chunk by chunk).
    pub fn for_each_row(&self, mut f: impl FnMut(&[T])) -> Result<(), String> {
        let w = self.width.max(1);
        self.each_chunk(&mut |c| {
            c.chunks_exact(w).for_each(&mut f);
            Ok(())
        })
    }
}

impl<T: Word> Stored<T> for Series<T> {
    fn count(&self) -> usize {
        self.spilled + self.tail.len()
    }

    fn each_chunk(&self, f: &mut dyn FnMut(&[T]) -> Result<(), String>) -> Result<(), String> {
        if let Some(spill) = &self.spill {
            let mut values = Vec::with_capacity(self.limit.min(self.spilled));
            let mut bytes = Vec::new();
            let mut at = 0;
            while at < self.spilled {
                let n = (self.spilled - at).min(self.limit);
                bytes.resize(n * T::BYTES, 0);
                spill.read(&mut bytes, (at * T::BYTES) as u64)?;
                values.clear();
                values.extend(bytes.chunks_exact(T::BYTES).map(T::get));
                f(&values)?;
                at += n;
            }
        }
        if !self.tail.is_empty() {
            f(&self.tail)?;
        }
        Ok(())
    }
}

impl<T: Word + std::fmt::Debug> std::fmt::Debug for Series<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series")
            .field("width", &self.width)
            .field("values", &self.to_vec())
            .finish()
    }
}

impl<T: Word + PartialEq> PartialEq for Series<T> {
    fn eq(&self, other: &Self) -> bool {
        self.width == other.width && self.to_vec() == other.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A series that spills gives back exactly the values pushed, in order, in whole rows,
    /// and holds at most its buffer in memory.
    #[test]
    fn spilled_series_reads_back_every_value_in_order() {
        let mut s = Series::<i128>::with_buffer(3, 100);
        let mut expect = Vec::new();
        for k in 0..1000i128 {
            let row = [k, -k * k, k << 70];
            s.extend(row);
            expect.extend(row);
            assert!(s.tail.len() * 16 <= 100 || s.tail.len() == 3);
        }
        assert!(s.spilled > 0);
        assert_eq!(s.rows(), 1000);
        assert_eq!(s.to_vec(), expect);
        let mut rows = 0;
        s.each_chunk(&mut |c| {
            assert_eq!(c.len() % 3, 0);
            rows += c.len() / 3;
            Ok(())
        })
        .unwrap();
        assert_eq!(rows, 1000);
        let f = Series::<f64>::with_buffer(1, 8);
        assert!(f.is_empty() && f.to_vec().is_empty());
        // As 64-bit words and back.
        for x in [0i128, -1, i128::MIN, i128::MAX, 12345 << 80] {
            let mut w = Vec::new();
            x.words(&mut w);
            assert_eq!((w.len(), i128::from_words(&w)), (2, x));
            assert_eq!(w, [x as u64, (x >> 64) as u64]);
        }
    }
}
