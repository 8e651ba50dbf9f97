//! A linearizability checker (Wing & Gong's search with Lowe's memoization of configurations).
//!
//! A [`History`] records, for every call made by concurrent tasks, when it was invoked, when it
//! returned and what it returned. The history is linearizable with respect to a sequential
//! [`Spec`] when the calls can be put in one order that respects real time (a call that
//! returned before another was invoked comes first) and in which the spec, run from its initial
//! state, accepts every recorded result. Specs may be nondeterministic: [`Spec::step`] answers
//! whether a result is possible and what state follows it.
//!
//! Histories are small (tens of calls per partition), so the search is exhaustive; callers
//! split a history by key when the spec's keys are independent (P-compositionality), which
//! keeps each search small.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A sequential specification: the state of the reference object.
pub trait Spec: Clone + Eq + Hash + Debug {
    /// An operation with its arguments.
    type Op: Clone + Debug;
    /// What an operation returned.
    type Ret: Clone + Debug;
    /// The state after `op` returned `ret` from this state, or `None` when `ret` is not a
    /// possible result here.
    fn step(&self, op: &Self::Op, ret: &Self::Ret) -> Option<Self>;

    /// Every state that may follow `op` returning `ret`: for specs where one result leaves
    /// several possible states (which of several equal items a call took). Defaults to
    /// [`Spec::step`].
    fn successors(&self, op: &Self::Op, ret: &Self::Ret) -> Vec<Self> {
        self.step(op, ret).into_iter().collect()
    }
}

/// One completed call.
#[derive(Clone, Debug)]
pub struct Call<O, R> {
    /// The task that made it.
    pub task: usize,
    /// Operation and arguments.
    pub op: O,
    /// The result.
    pub ret: R,
    /// Logical time of the invocation.
    pub invoked: u64,
    /// Logical time of the response (after `invoked`).
    pub returned: u64,
}

/// A recorder shared by concurrent tasks: a logical clock that orders invocations and
/// responses, and the calls completed so far.
pub struct History<O, R> {
    clock: AtomicU64,
    calls: parking_lot::Mutex<Vec<Call<O, R>>>,
}

impl<O: Clone + Debug, R: Clone + Debug> Default for History<O, R> {
    fn default() -> Self {
        Self {
            clock: AtomicU64::new(0),
            calls: parking_lot::Mutex::new(Vec::new()),
        }
    }
}

impl<O: Clone + Debug, R: Clone + Debug> History<O, R> {
    /// An empty history, shareable between tasks.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Runs `call`, recording its invocation and response times around it.
    pub async fn record<F>(&self, task: usize, op: O, call: F) -> R
    where
        F: std::future::Future<Output = R>,
    {
        let invoked = self.clock.fetch_add(1, Ordering::SeqCst);
        let ret = call.await;
        let returned = self.clock.fetch_add(1, Ordering::SeqCst);
        self.calls.lock().push(Call {
            task,
            op,
            ret: ret.clone(),
            invoked,
            returned,
        });
        ret
    }

    /// The calls recorded so far.
    pub fn calls(&self) -> Vec<Call<O, R>> {
        self.calls.lock().clone()
    }
}

/// Most calls one search accepts (the configuration set is a `u128` bitmask).
pub const MAX_CALLS: usize = 128;

/// Checks that `calls` are linearizable from `init`. On failure, returns the history in
/// invocation order with the longest prefix the search managed to linearize, for the report.
pub fn check<S: Spec>(init: &S, calls: &[Call<S::Op, S::Ret>]) -> Result<(), String> {
    if calls.len() > MAX_CALLS {
        return Err(format!(
            "history of {} calls is longer than the checker's {MAX_CALLS}: partition it",
            calls.len()
        ));
    }
    let mut calls: Vec<&Call<S::Op, S::Ret>> = calls.iter().collect();
    calls.sort_by_key(|c| c.invoked);
    let n = calls.len();
    let full: u128 = if n == 128 {
        u128::MAX
    } else {
        (1u128 << n) - 1
    };
    let mut seen: HashSet<(u128, S)> = HashSet::new();
    let mut best: Vec<usize> = Vec::new();
    // Depth-first over configurations (set of linearized calls, state); a call may go next when
    // no pending call returned before it was invoked.
    let mut stack: Vec<(u128, S, Vec<usize>)> = vec![(0, init.clone(), Vec::new())];
    while let Some((done, state, order)) = stack.pop() {
        if done == full {
            return Ok(());
        }
        if order.len() > best.len() {
            best = order.clone();
        }
        let pending = |i: usize| done & (1u128 << i) == 0;
        // The earliest response among pending calls bounds which calls may be linearized next.
        let horizon = (0..n)
            .filter(|&i| pending(i))
            .map(|i| calls[i].returned)
            .min()
            .unwrap_or(u64::MAX);
        for i in (0..n).filter(|&i| pending(i) && calls[i].invoked < horizon) {
            for next in state.successors(&calls[i].op, &calls[i].ret) {
                let done = done | (1u128 << i);
                if seen.insert((done, next.clone())) {
                    let mut order = order.clone();
                    order.push(i);
                    stack.push((done, next, order));
                }
            }
        }
    }
    let mut report = String::from("history is not linearizable\nlongest linearizable prefix:\n");
    for &i in &best {
        let c = calls[i];
        report.push_str(&format!(
            "  task {} [{}..{}] {:?} -> {:?}\n",
            c.task, c.invoked, c.returned, c.op, c.ret
        ));
    }
    report.push_str("calls that could not follow it:\n");
    for (i, c) in calls.iter().enumerate() {
        if !best.contains(&i) {
            report.push_str(&format!(
                "  task {} [{}..{}] {:?} -> {:?}\n",
                c.task, c.invoked, c.returned, c.op, c.ret
            ));
        }
    }
    Err(report)
}

/// Splits `calls` by `key` and checks each part from `init(key)`.
pub fn check_partitioned<S: Spec, K: Eq + Hash + Clone + Debug>(
    calls: &[Call<S::Op, S::Ret>],
    key: impl Fn(&S::Op) -> K,
    init: impl Fn(&K) -> S,
) -> Result<(), String> {
    type Part<S, K> = (K, Vec<Call<<S as Spec>::Op, <S as Spec>::Ret>>);
    let mut parts: Vec<Part<S, K>> = Vec::new();
    for c in calls {
        let k = key(&c.op);
        match parts.iter_mut().find(|(pk, _)| *pk == k) {
            Some((_, v)) => v.push(c.clone()),
            None => parts.push((k, vec![c.clone()])),
        }
    }
    for (k, part) in parts {
        check(&init(&k), &part).map_err(|e| format!("key {k:?}: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A register with compare-and-set.
    #[derive(Clone, Debug, PartialEq, Eq, Hash)]
    struct Register(u8);

    #[derive(Clone, Debug)]
    enum Op {
        Read,
        Write(u8),
        Cas(u8, u8),
    }

    impl Spec for Register {
        type Op = Op;
        type Ret = Option<u8>;
        fn step(&self, op: &Op, ret: &Option<u8>) -> Option<Self> {
            match op {
                Op::Read => (*ret == Some(self.0)).then(|| self.clone()),
                Op::Write(v) => ret.is_none().then_some(Register(*v)),
                // Returns Some(1) on success, Some(0) on failure.
                Op::Cas(old, new) if self.0 == *old => (*ret == Some(1)).then_some(Register(*new)),
                Op::Cas(..) => (*ret == Some(0)).then(|| self.clone()),
            }
        }
    }

    fn call(
        task: usize,
        op: Op,
        ret: Option<u8>,
        invoked: u64,
        returned: u64,
    ) -> Call<Op, Option<u8>> {
        Call {
            task,
            op,
            ret,
            invoked,
            returned,
        }
    }

    #[test]
    fn overlapping_calls_may_take_either_order() {
        // write(1) overlaps a read that saw 0, and a read that saw 1.
        let h = [
            call(0, Op::Write(1), None, 0, 5),
            call(1, Op::Read, Some(0), 1, 2),
            call(2, Op::Read, Some(1), 3, 4),
        ];
        assert!(check(&Register(0), &h).is_ok());
    }

    #[test]
    fn real_time_order_is_respected() {
        // The write returned before the read was invoked: the read must see it.
        let h = [
            call(0, Op::Write(1), None, 0, 1),
            call(1, Op::Read, Some(0), 2, 3),
        ];
        let e = check(&Register(0), &h).unwrap_err();
        assert!(e.contains("not linearizable"), "{e}");
    }

    #[test]
    fn two_successful_compare_and_sets_of_one_value_are_refused() {
        let h = [
            call(0, Op::Cas(0, 1), Some(1), 0, 3),
            call(1, Op::Cas(0, 2), Some(1), 1, 2),
        ];
        assert!(check(&Register(0), &h).is_err());
        let h = [
            call(0, Op::Cas(0, 1), Some(1), 0, 3),
            call(1, Op::Cas(0, 2), Some(0), 1, 2),
            call(2, Op::Read, Some(1), 4, 5),
        ];
        assert!(check(&Register(0), &h).is_ok());
    }

    #[test]
    fn a_stale_read_after_two_writes_is_refused() {
        // Reads see 2 then 1, but write(1) returned before write(2) was invoked.
        let h = [
            call(0, Op::Write(1), None, 0, 1),
            call(0, Op::Write(2), None, 2, 3),
            call(1, Op::Read, Some(2), 4, 5),
            call(2, Op::Read, Some(1), 6, 7),
        ];
        assert!(check(&Register(0), &h).is_err());
    }

    #[test]
    fn partitions_are_checked_independently() {
        #[derive(Clone, Debug)]
        struct Keyed(u8, Op);
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        struct One(Register);
        impl Spec for One {
            type Op = Keyed;
            type Ret = Option<u8>;
            fn step(&self, op: &Keyed, ret: &Option<u8>) -> Option<Self> {
                self.0.step(&op.1, ret).map(One)
            }
        }
        let c = |task, k, op, ret, i, r| Call {
            task,
            op: Keyed(k, op),
            ret,
            invoked: i,
            returned: r,
        };
        let ok = [
            c(0, 1, Op::Write(7), None, 0, 1),
            c(1, 2, Op::Read, Some(0), 2, 3),
            c(1, 1, Op::Read, Some(7), 4, 5),
        ];
        assert!(check_partitioned(&ok, |o: &Keyed| o.0, |_| One(Register(0))).is_ok());
        let bad = [
            c(0, 1, Op::Write(7), None, 0, 1),
            c(1, 1, Op::Read, Some(0), 2, 3),
        ];
        let e = check_partitioned(&bad, |o: &Keyed| o.0, |_| One(Register(0))).unwrap_err();
        assert!(e.starts_with("key 1"), "{e}");
    }

    proptest::proptest! {
        /// Any sequential history of the spec itself (no overlap) is linearizable, and
        /// changing one read's result to a value never written makes it not.
        #[test]
        fn sequential_histories_are_linearizable(ops in proptest::collection::vec(0u8..6, 1..40)) {
            let mut reg = Register(0);
            let mut h = Vec::new();
            for (i, o) in ops.iter().enumerate() {
                let (op, ret) = match o % 3 {
                    0 => (Op::Read, Some(reg.0)),
                    1 => (Op::Write(*o), None),
                    _ => {
                        let ok = reg.0 == 1;
                        (Op::Cas(1, *o), Some(u8::from(ok)))
                    }
                };
                reg = reg.step(&op, &ret).expect("own result");
                h.push(call(0, op, ret, 2 * i as u64, 2 * i as u64 + 1));
            }
            proptest::prop_assert!(check(&Register(0), &h).is_ok());
            if let Some(pos) = h.iter().position(|c| matches!(c.op, Op::Read)) {
                h[pos].ret = Some(200);
                proptest::prop_assert!(check(&Register(0), &h).is_err());
            }
        }
    }
}
