//! HDF5 files as this program writes them, whatever they hold: attributes and datasets
//! written by every rank with identical arguments, replicated data by rank 0 alone, files
//! written under a temporary name, marked complete and renamed only when every rank has
//! closed them, and failures agreed on by all ranks before the next collective call. The
//! layouts themselves live with their owners (`output` for a run's file, `checkpoint`,
//! `trees`, `meanfield::run`).

use crate::comm::{agree, Comm};
use crate::spill::Stored;
use crate::Error;
use hdf5::types::VarLenUnicode;
use hdf5::{Dataset, File, Group, H5Type, Hyperslab, Location, SliceOrIndex};
use std::path::{Path, PathBuf};

pub fn partial_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".partial");
    PathBuf::from(p)
}

pub(crate) fn unicode(s: &str) -> hdf5::Result<VarLenUnicode> {
    s.parse::<VarLenUnicode>()
        .map_err(|e| hdf5::Error::from(e.to_string().as_str()))
}

pub(crate) fn attr_str(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    loc.new_attr::<VarLenUnicode>()
        .create(name)?
        .write_scalar(&unicode(value)?)
}

pub(crate) fn attr<T: H5Type>(loc: &Location, name: &str, value: T) -> hdf5::Result<()> {
    loc.new_attr::<T>().create(name)?.write_scalar(&value)
}

/// A string attribute, if present.
pub fn text(loc: &Location, name: &str) -> Option<String> {
    loc.attr(name)
        .ok()?
        .read_scalar::<VarLenUnicode>()
        .ok()
        .map(|s| s.as_str().to_string())
}

/// A scalar attribute, if present.
pub fn num<T: H5Type>(loc: &Location, name: &str) -> Option<T> {
    loc.attr(name).ok()?.read_scalar::<T>().ok()
}

/// The description of a per-neuron dataset of a checkpoint (one row per gid).
pub(crate) const PER_NEURON: &str = "by gid";

/// Creates a dataset (collectively) with its `units` and `description`.
pub(crate) fn dataset<T: H5Type>(
    g: &Group,
    name: &str,
    shape: &[usize],
    units: &str,
    description: &str,
) -> hdf5::Result<Dataset> {
    let ds = g.new_dataset::<T>().shape(shape.to_vec()).create(name)?;
    attr_str(&ds, "units", units)?;
    attr_str(&ds, "description", description)?;
    Ok(ds)
}

/// A dataset holding data every rank has: created by all, written by rank 0, chunk by chunk
/// along its first dimension when the data are a spilled [`Series`](crate::spill::Series).
pub(crate) fn replicated<T: H5Type, D: Stored<T> + ?Sized>(
    g: &Group,
    name: &str,
    data: &D,
    shape: &[usize],
    units: &str,
    description: &str,
    w: &mut RawWrites,
) -> hdf5::Result<()> {
    let ds = dataset::<T>(g, name, shape, units, description)?;
    if w.rank == 0 && data.count() > 0 {
        let written = write_rows(&ds, shape, data);
        w.keep(written);
    }
    Ok(())
}

/// Writes `data` (values in the dataset's order) into `ds` of `shape`, one chunk of whole
/// rows (of the trailing dimensions) at a time.
fn write_rows<T: H5Type, D: Stored<T> + ?Sized>(
    ds: &Dataset,
    shape: &[usize],
    data: &D,
) -> hdf5::Result<()> {
    let total: usize = shape.iter().product();
    if data.count() != total {
        return Err(format!(
            "{}: {} values for a dataset of {total}",
            ds.name(),
            data.count()
        )
        .as_str()
        .into());
    }
    let row: usize = shape.iter().skip(1).product();
    let mut at = 0;
    data.each_chunk(&mut |c| {
        let n = c.len() / row.max(1);
        let mut dims = vec![n];
        dims.extend_from_slice(&shape[1.min(shape.len())..]);
        let mut sel = vec![SliceOrIndex::from(at..at + n)];
        sel.extend(shape.iter().skip(1).map(|_| SliceOrIndex::from(..)));
        let view =
            ndarray::ArrayView::from_shape(ndarray::IxDyn(&dims), c).map_err(|e| e.to_string())?;
        ds.write_slice(view, Hyperslab::from(sel))
            .map_err(|e| e.to_string())?;
        at += n;
        Ok(())
    })
    .map_err(|e| hdf5::Error::from(e.as_str()))
}

/// Raw data writes are independent (per rank) while creating groups, datasets and attributes
/// is collective. A failed raw write (a full disk, a file size limit) is therefore recorded
/// and the rank carries on with the collective calls, so that no rank leaves the others
/// waiting; the ranks agree on success before the file is declared complete.
pub(crate) struct RawWrites {
    pub(crate) rank: usize,
    first_error: Option<hdf5::Error>,
}

impl RawWrites {
    pub(crate) fn keep(&mut self, r: hdf5::Result<()>) {
        if let Err(e) = r {
            self.first_error.get_or_insert(e);
        }
    }
}

extern "C" {
    /// HDF5's flag "the library is initialised" (exported by libhdf5, not by `hdf5-sys`).
    static mut H5_libinit_g: bool;
}

/// Keeps HDF5 from shutting down when the process ends after a failure. HDF5 shuts down from
/// inside `MPI_Finalize` (and at exit), closing every file still open; HDF5 1.10 crashes
/// (SIGSEGV in `H5F__close_cb`) closing a file whose close already failed, as on a full disk.
/// The process is ending: the operating system reclaims what HDF5 holds. Call on every rank
/// before MPI is finalised; HDF5 is not usable afterwards.
pub fn abandon_hdf5() {
    hdf5::sync::sync(|| {
        // SAFETY: a plain store to a C `hbool_t` under the crate's global HDF5 lock; no HDF5
        // call follows (the process is ending), and HDF5's shutdown reads the flag and
        // returns at once.
        unsafe { H5_libinit_g = false }
    });
}

/// Opens an existing file for reading on every rank (collectively, through MPI-IO, when there
/// is more than the serial communicator).
pub fn open_file(path: &Path, comm: &dyn Comm) -> hdf5::Result<File> {
    parallel(comm).map_or_else(|| File::open(path), |b| b.open(path))
}

/// Creates a file collectively on every rank.
pub fn create_file(path: &Path, comm: &dyn Comm) -> hdf5::Result<File> {
    parallel(comm).map_or_else(|| File::create(path), |b| b.create(path))
}

/// The MPI-IO file builder of `comm`, when it is an MPI communicator.
fn parallel(comm: &dyn Comm) -> Option<hdf5::file::FileBuilder> {
    use mpi::raw::AsRaw;
    let raw = comm.mpi()?.as_raw();
    let mut builder = File::with_options();
    // Strong close: closing the file closes every object in it, even after a failed write, so
    // nothing is left for HDF5 to flush after MPI has finalised.
    builder.with_fapl(|p| {
        p.mpio(raw, None)
            .fclose_degree(hdf5::file::FileCloseDegree::Strong)
    });
    Some(builder)
}

/// Creates `path.partial` collectively, fills it with `contents`, marks it complete (root
/// attribute `status`) and renames it to `path` once it is closed on every rank. On failure
/// nothing is left behind, an existing `path` is untouched, and every rank returns the error.
///
/// Each step that can fail on some ranks only (creating, filling, closing, renaming) is agreed
/// on by all ranks ([`agree`]) before the next collective call. A failure while filling (a
/// full disk, a file size limit) can stop one rank early, after the others made collective
/// HDF5 calls it skipped; closing the file, itself collective, then waits forever (seen with
/// a full disk on 3 ranks). So the file is abandoned, not closed, and the process must end
/// without HDF5's clean-up ([`abandon_hdf5`]), as `main` does after any failed run.
pub(crate) fn write_file(
    path: &Path,
    comm: &dyn Comm,
    contents: impl FnOnce(&File, &mut RawWrites) -> hdf5::Result<()>,
) -> Result<(), Error> {
    let tmp = partial_path(path);
    let mut w = RawWrites {
        rank: comm.rank(),
        first_error: None,
    };
    // Leave nothing behind that could be mistaken for a result.
    let discard = |e: Error| {
        if comm.rank() == 0 {
            let _ = std::fs::remove_file(&tmp);
        }
        e
    };
    let file = agree(comm, create_file(&tmp, comm).map_err(Error::from)).map_err(discard)?;
    let filled = contents(&file, &mut w)
        .and_then(|()| w.first_error.take().map_or(Ok(()), Err))
        .map_err(|e| hdf5::Error::from(format!("{e}{}", likely_cause(&tmp)).as_str()));
    if let Err(e) = agree(comm, filled.map_err(Error::from)) {
        // Not closed: see above. The process ends without HDF5's clean-up ([`abandon_hdf5`]).
        std::mem::forget(file);
        return Err(discard(e));
    }
    // Last, so a file that has it was written through to the end.
    let closed = attr_str(&file, "status", "complete").and_then(|()| file.close());
    agree(comm, closed.map_err(Error::from)).map_err(discard)?;
    let renamed = if comm.rank() == 0 {
        std::fs::rename(&tmp, path).map_err(|e| Error::Io {
            doing: "renaming".into(),
            path: format!("{} to {}", tmp.display(), path.display()),
            reason: e.to_string(),
        })
    } else {
        Ok(())
    };
    agree(comm, renamed).map_err(discard)
}

/// What HDF5 does not say about a failed write: a full file system or a file size limit.
fn likely_cause(path: &Path) -> String {
    let dir = crate::memory::directory_of(path);
    // Less than one MiB left: what stopped the write.
    if crate::memory::free_bytes(dir).is_some_and(|free| free < 1048576.0) {
        return format!(" (the file system of {} is full)", dir.display());
    }
    if let Some(limit) = crate::memory::file_size_limit() {
        return format!(" (the file size limit is {limit} bytes)");
    }
    String::new()
}
