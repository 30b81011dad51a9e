//! All communication between ranks: the few collectives lapicque uses, behind one trait with a
//! serial implementation (one process, no MPI) and an MPI implementation.
//!
//! Every method is a collective: every rank calls it, in the same order, including ranks with
//! nothing to contribute.

use mpi::datatype::PartitionMut;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;

pub trait Comm {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;

    /// Concatenates every rank's `local` in rank order into `out` (an all-gather-v).
    fn all_gather_u32(&self, local: &[u32], out: &mut Vec<u32>);

    /// Concatenates every rank's `local` in rank order into `out` (an all-gather-v).
    fn all_gather_f64(&self, local: &[f64], out: &mut Vec<f64>);

    /// One value from every rank, in rank order.
    fn all_gather_u64(&self, local: u64) -> Vec<u64>;

    /// Personalised exchange (an all-to-all-v): `send` holds one part per rank, in rank order,
    /// `counts[q]` words for rank `q`; `out` receives the parts addressed to this rank by every
    /// rank, concatenated in rank order.
    fn all_to_all_u32(&self, send: &[u32], counts: &[usize], out: &mut Vec<u32>);

    /// Element-wise sum over ranks, in place.
    fn sum_u64(&self, buf: &mut [u64]);

    /// Element-wise sum over ranks of exact fixed-point values, in place. Integer addition is
    /// associative, so the result does not depend on the number of ranks.
    fn sum_i128(&self, buf: &mut [i128]);

    /// Rank 0's `bytes` on every rank.
    fn broadcast_bytes(&self, bytes: &mut Vec<u8>);

    fn barrier(&self);

    /// The MPI communicator, for collective file I/O; `None` when running without MPI.
    fn mpi(&self) -> Option<&SimpleCommunicator>;
}

/// The message of the lowest-ranked rank whose `message` is `Some`, on every rank, with that
/// rank (collective; `None` on every rank when no rank has one).
fn first_message(comm: &dyn Comm, message: Option<&str>) -> Option<(usize, Vec<u8>)> {
    // A rank's flag is its message length + 1 (0: no message).
    let flags = comm.all_gather_u64(message.map_or(0, |m| m.len() as u64 + 1));
    let first = flags.iter().position(|&f| f > 0)?;
    let bytes: Vec<u32> = message.unwrap_or_default().bytes().map(u32::from).collect();
    let mut all = Vec::new();
    comm.all_gather_u32(&bytes, &mut all);
    // The ranks before `first` sent nothing, so its message comes first.
    let len = (flags[first] - 1) as usize;
    Some((first, all[..len].iter().map(|&b| b as u8).collect()))
}

/// The outcome of a step that may fail on some ranks only, made the same on every rank
/// (collective): the error of the lowest-ranked rank that failed, if any, else `local`'s value.
/// Ranks that did not fail report that error's text.
pub fn first_error<T>(
    comm: &dyn Comm,
    local: Result<T, crate::error::ConfigError>,
) -> Result<T, crate::error::ConfigError> {
    let message = local.as_ref().err().map(|e| e.to_string());
    let Some((first, text)) = first_message(comm, message.as_deref()) else {
        return local;
    };
    match local {
        Err(e) if comm.rank() == first => Err(e),
        _ => Err(crate::error::ConfigError::Parse(
            String::from_utf8_lossy(&text).into_owned(),
        )),
    }
}

/// The outcome of a step that may fail on some ranks only, made the same on every rank
/// (collective): the error of the lowest-ranked rank that failed, if any, else `local`'s
/// value. The other ranks get [`crate::Error::Elsewhere`] with that error's message and exit
/// code, so rank 0 can print it and every rank exits with the same code.
///
/// This is the one error path of collective work (file I/O above all): every step that may
/// fail on one rank passes through here before the next collective call, so no rank is left
/// waiting in a collective the others have abandoned.
pub fn agree<T>(comm: &dyn Comm, local: Result<T, crate::Error>) -> Result<T, crate::Error> {
    // The exit code as one character, then the text.
    let message = local
        .as_ref()
        .err()
        .map(|e| format!("{}{e}", char::from(e.exit_code())));
    let Some((first, text)) = first_message(comm, message.as_deref()) else {
        return local;
    };
    match local {
        Err(e) if comm.rank() == first => Err(e),
        _ => Err(crate::Error::Elsewhere {
            code: text.first().copied().unwrap_or(1),
            message: String::from_utf8_lossy(text.get(1..).unwrap_or_default()).into_owned(),
        }),
    }
}

/// One process, no MPI: every collective is the identity.
pub struct SerialComm;

impl Comm for SerialComm {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_gather_u32(&self, local: &[u32], out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(local);
    }
    fn all_gather_f64(&self, local: &[f64], out: &mut Vec<f64>) {
        out.clear();
        out.extend_from_slice(local);
    }
    fn all_gather_u64(&self, local: u64) -> Vec<u64> {
        vec![local]
    }
    fn all_to_all_u32(&self, send: &[u32], counts: &[usize], out: &mut Vec<u32>) {
        debug_assert_eq!(counts, [send.len()]);
        out.clear();
        out.extend_from_slice(send);
    }
    fn sum_u64(&self, _buf: &mut [u64]) {}
    fn sum_i128(&self, _buf: &mut [i128]) {}
    fn broadcast_bytes(&self, _bytes: &mut Vec<u8>) {}
    fn barrier(&self) {}
    fn mpi(&self) -> Option<&SimpleCommunicator> {
        None
    }
}

/// MPI over a communicator (normally `MPI_COMM_WORLD`).
pub struct MpiComm {
    world: SimpleCommunicator,
    counts: Vec<Count>,
}

impl MpiComm {
    pub fn new(world: SimpleCommunicator) -> Self {
        let n = world.size() as usize;
        MpiComm {
            world,
            counts: vec![0; n],
        }
    }

    /// All-gather-v of `local` in rank order into `out`. The counts go first so every rank
    /// can size its receive buffer.
    fn all_gather_v<T: Equivalence + Copy + Default>(&self, local: &[T], out: &mut Vec<T>) {
        let mine = count(local.len());
        let mut counts = self.counts.clone();
        self.world.all_gather_into(&mine, &mut counts[..]);
        let (displs, total) = displacements(&counts);
        out.clear();
        out.resize(total, T::default());
        let mut partition = PartitionMut::new(&mut out[..], counts, displs);
        self.world.all_gather_varcount_into(local, &mut partition);
    }
}

/// Where each rank's part starts in a buffer of the parts of `counts` elements laid end to
/// end (an exclusive prefix sum), and the buffer's length.
fn displacements(counts: &[Count]) -> (Vec<Count>, usize) {
    let mut total = 0usize;
    let displs = counts
        .iter()
        .map(|&c| {
            let d = count(total);
            total += c as usize;
            d
        })
        .collect();
    (displs, total)
}

fn count(n: usize) -> Count {
    Count::try_from(n).expect("message larger than an MPI count (2^31 - 1 elements)")
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }
    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_gather_u32(&self, local: &[u32], out: &mut Vec<u32>) {
        self.all_gather_v(local, out);
    }

    fn all_gather_f64(&self, local: &[f64], out: &mut Vec<f64>) {
        self.all_gather_v(local, out);
    }

    fn all_gather_u64(&self, local: u64) -> Vec<u64> {
        let mut out = vec![0u64; self.size()];
        self.world.all_gather_into(&local, &mut out[..]);
        out
    }

    fn all_to_all_u32(&self, send: &[u32], counts: &[usize], out: &mut Vec<u32>) {
        let n = self.size();
        assert_eq!(counts.len(), n, "one part per rank");
        let send_counts: Vec<Count> = counts.iter().map(|&c| count(c)).collect();
        let mut recv_counts = vec![0 as Count; n];
        self.world
            .all_to_all_into(&send_counts[..], &mut recv_counts[..]);
        let (sd, _) = displacements(&send_counts);
        let (rd, total) = displacements(&recv_counts);
        out.clear();
        out.resize(total, 0);
        let sendbuf = mpi::datatype::Partition::new(send, send_counts, sd);
        let mut recvbuf = PartitionMut::new(&mut out[..], recv_counts, rd);
        self.world.all_to_all_varcount_into(&sendbuf, &mut recvbuf);
    }

    fn sum_u64(&self, buf: &mut [u64]) {
        // One rank holds the sum already (a reduction would copy the buffer twice).
        if self.size() == 1 {
            return;
        }
        let send = buf.to_vec();
        self.world
            .all_reduce_into(&send[..], buf, mpi::collective::SystemOperation::sum());
    }

    fn sum_i128(&self, buf: &mut [i128]) {
        // MPI has no 128-bit integer type: gather both halves of every value from every rank and
        // add them with wrapping arithmetic, which is exact whenever the final sum fits.
        if self.size() == 1 {
            return;
        }
        let send: Vec<u64> = buf
            .iter()
            .flat_map(|&x| [x as u64, (x >> 64) as u64])
            .collect();
        let mut all = vec![0u64; send.len() * self.size()];
        self.world.all_gather_into(&send[..], &mut all[..]);
        for (k, x) in buf.iter_mut().enumerate() {
            *x = all
                .chunks_exact(send.len())
                .map(|r| (i128::from(r[2 * k + 1] as i64) << 64) | i128::from(r[2 * k]))
                .fold(0i128, i128::wrapping_add);
        }
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let root = self.world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        // Every rank knows the length now, so all skip an empty payload together.
        if len > 0 {
            root.broadcast_into(&mut bytes[..]);
        }
    }

    fn barrier(&self) {
        self.world.barrier();
    }

    fn mpi(&self) -> Option<&SimpleCommunicator> {
        Some(&self.world)
    }
}
