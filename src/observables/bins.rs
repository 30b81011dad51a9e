//! Sums per bin of a schedule (spike counts per rate bin, input per balance bin), in bounded
//! memory: each rank adds into rows of local sums; a reduction sums them across ranks into the
//! global rows; the bins that can take no more input move to a [`Series`], which spills beyond
//! its buffer. Only the bins since the last reduction (and those still taking input) are held.

use super::{Restored, Saved};
use crate::comm::Comm;
use crate::spill::{Concat, Generated, Series, Stored, Word};

/// A value per bin from the bin's index and row ([`Bins::per_bin`]).
pub type PerBin<'a, T> = dyn Fn(usize, &[T]) -> f64 + 'a;

/// What [`Bins::each_row`] calls with each bin's index and row.
pub type EachRow<'a, T> = dyn FnMut(usize, &[T]) -> Result<(), String> + 'a;

pub struct Bins<T: Word> {
    width: usize,
    /// Global sums of the bins that take no more input, in bin order.
    done: Series<T>,
    /// Global sums of the bins after those (rows from bin `done.rows()`).
    open: Vec<T>,
    /// Local sums not yet reduced (rows from bin `done.rows()`).
    local: Vec<T>,
    /// The latest bin touched: bins are touched in step order, so the bins before it take no
    /// more input.
    last: usize,
}

/// What sums per bin are added with, and summed across ranks with.
pub trait Sum: Word + std::ops::AddAssign {
    fn sum_ranks(comm: &dyn Comm, xs: &mut [Self]);
}

impl Sum for u64 {
    fn sum_ranks(comm: &dyn Comm, xs: &mut [u64]) {
        comm.sum_u64(xs);
    }
}

impl Sum for i128 {
    fn sum_ranks(comm: &dyn Comm, xs: &mut [i128]) {
        comm.sum_i128(xs);
    }
}

impl<T: Sum> Bins<T> {
    /// Rows of `width` sums (`width` 0: nothing is held).
    pub fn new(width: usize) -> Self {
        Bins {
            width,
            done: Series::new(width),
            open: Vec::new(),
            local: Vec::new(),
            last: 0,
        }
    }

    /// This rank's row of bin `bin` (a bin not yet moved to the series).
    pub fn local(&mut self, bin: usize) -> &mut [T] {
        self.last = self.last.max(bin);
        let at = (bin - self.done.rows()) * self.width;
        if self.local.len() < at + self.width {
            self.local.resize(at + self.width, T::default());
        }
        &mut self.local[at..at + self.width]
    }

    /// Local sums waiting for [`Bins::reduce`].
    pub fn pending(&self) -> usize {
        self.local.len()
    }

    /// Adds the local sums of every rank into the global ones (a collective: every rank has
    /// touched the same bins), then moves the bins before the latest one touched to the series.
    pub fn reduce(&mut self, comm: &dyn Comm) {
        let complete = self.last;
        if !self.local.is_empty() {
            T::sum_ranks(comm, &mut self.local);
            if self.open.len() < self.local.len() {
                self.open.resize(self.local.len(), T::default());
            }
            for (g, l) in self.open.iter_mut().zip(&self.local) {
                *g += *l;
            }
            self.local.clear();
        }
        let rows = complete.saturating_sub(self.done.rows());
        let n = (rows * self.width).min(self.open.len());
        self.done.extend(self.open.drain(..n));
    }

    /// Calls `f` with every bin and its global row, in order, up to `n_bins` (zeros for the
    /// bins not reached).
    pub fn each_row(&self, n_bins: usize, f: &mut EachRow<T>) -> Result<(), String> {
        let w = self.width;
        if w == 0 {
            // Nothing is summed: every bin's row is empty.
            return (0..n_bins).try_for_each(|bin| f(bin, &[]));
        }
        let mut bin = 0;
        let mut rows = |values: &[T]| -> Result<(), String> {
            for row in values.chunks_exact(w) {
                f(bin, row)?;
                bin += 1;
            }
            Ok(())
        };
        self.done.each_chunk(&mut rows)?;
        rows(&self.open)?;
        let reached = self.done.rows() + self.open.len() / w;
        let zeros = vec![T::default(); w];
        for _ in reached..n_bins {
            rows(&zeros)?;
        }
        Ok(())
    }

    /// One value per bin, `n_bins` of them, computed from each bin's row as the values are
    /// written ([`Bins::each_row`]).
    pub fn per_bin<'a>(&'a self, n_bins: usize, value: &'a PerBin<'a, T>) -> impl Stored<f64> + 'a {
        Generated(
            n_bins,
            move |sink: &mut dyn FnMut(&[f64]) -> Result<(), String>| {
                let mut values = Vec::new();
                self.each_row(n_bins, &mut |bin, row| {
                    values.push(value(bin, row));
                    if values.len() == 1 << 13 {
                        sink(&values)?;
                        values.clear();
                    }
                    Ok(())
                })?;
                sink(&values)
            },
        )
    }

    /// Saves the global rows reached (`<name>`, as 64-bit words) and how many of them take no
    /// more input (`<name>_done`). Reduced: no local sums are pending.
    pub fn save(&self, to: &mut Saved, name: &str) -> hdf5::Result<()> {
        let open = Series::from_vec(self.width, self.open.clone());
        let rows = Concat(&[&self.done as &dyn Stored<T>, &open]);
        let words = Generated(
            T::WORDS * rows.count(),
            |sink: &mut dyn FnMut(&[u64]) -> Result<(), String>| {
                let mut w = Vec::new();
                rows.each_chunk(&mut |c| {
                    w.clear();
                    c.iter().for_each(|x| x.words(&mut w));
                    sink(&w)
                })
            },
        );
        to.replicated(name, &words)?;
        to.replicated(&format!("{name}_done"), &[self.done.rows() as u64][..])
    }

    /// Restores what [`Bins::save`] wrote.
    pub fn restore(&mut self, from: &Restored, name: &str) -> hdf5::Result<()> {
        let done: Vec<u64> = from.replicated(&format!("{name}_done"))?;
        let [done] = done[..] else {
            return Err(format!("{name}_done: not one value").as_str().into());
        };
        let mut words = Series::<u64>::new(T::WORDS * self.width);
        from.series(name, &mut words)?;
        *self = Bins::new(self.width);
        let mut row = 0;
        let mut values = Vec::with_capacity(self.width);
        words
            .for_each_row(|w| {
                values.clear();
                values.extend(w.chunks_exact(T::WORDS).map(T::from_words));
                if row < done as usize {
                    self.done.extend(values.iter().copied());
                } else {
                    self.open.extend_from_slice(&values);
                }
                row += 1;
            })
            .map_err(|e| hdf5::Error::from(e.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comm::SerialComm;

    /// Bins reduced at any points, moved to the series early or late, give the same rows as
    /// plain sums per bin; bins not reached read as zeros.
    #[test]
    fn reduced_bins_equal_plain_sums() {
        let (n_bins, width) = (50, 3);
        let mut plain = vec![0i128; n_bins * width];
        let mut bins = Bins::<i128>::new(width);
        for step in 0..400u64 {
            let bin = (step / 10) as usize;
            for (c, x) in bins.local(bin).iter_mut().enumerate() {
                let add = (step as i128 * 7919 + c as i128) << 70;
                *x += add;
                plain[bin * width + c] += add;
            }
            if step % 13 == 0 {
                bins.reduce(&SerialComm);
            }
        }
        bins.reduce(&SerialComm);
        let mut seen = Vec::new();
        bins.each_row(n_bins, &mut |bin, row| {
            assert_eq!(bin * width, seen.len());
            seen.extend_from_slice(row);
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, plain);
    }
}
