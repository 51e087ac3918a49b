//! [`Triage`]: the pure decision core of one relay pass. It says which rows
//! of a batch to publish together, narrows a batch that Cairn refused down
//! to the refused rows by halving it, and sets aside every row that names a
//! dead letter as predecessor, all in outbox order. It does no I/O, so that
//! its order and its choices are tested without a database or a server.

use std::collections::{HashSet, VecDeque};

use cairn_fact::Hash;

/// What the relay must know of a row to triage it.
pub(crate) struct TriageRow {
    /// The fact's hash.
    pub hash: Hash,
    /// Every predecessor of the fact, with its role.
    pub predecessors: Vec<(String, Hash)>,
}

/// The next thing the relay does with a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TriageStep {
    /// Publish these rows (indexes into the batch, ascending) in one call,
    /// then report [`Triage::published`] or [`Triage::refused`].
    Publish(Vec<usize>),
    /// Set this row aside: its predecessor `predecessor` (role `role`) is a
    /// dead letter, so Cairn cannot store it.
    SetAsideBlocked {
        /// The row's index in the batch.
        row_idx: usize,
        /// The dead predecessor's role.
        role: String,
        /// The dead predecessor's hash.
        predecessor: Hash,
    },
    /// Every row is either published or set aside.
    Done,
}

/// Triage of one batch, read in `id` order.
///
/// The batch is published as one group. When Cairn refuses a group with
/// more than one row, the group is split into halves that are published
/// left first, so that rows still reach Cairn in `id` order; a refused
/// group of one row is that row's refusal, and the row is set aside. Before
/// a group is published, each of its rows that names a dead letter (known
/// before the pass or set aside in it) is set aside instead, so a chain of
/// successors of a refused row is set aside with it, while unrelated rows
/// go on. A batch with r refused rows among n takes about r·log2(n) calls
/// beyond the first.
pub(crate) struct Triage {
    rows: Vec<TriageRow>,
    /// Hashes of the dead letters among the predecessors, and of every row
    /// set aside in this pass.
    dead_hashes: HashSet<Hash>,
    /// Groups still to publish, in order; the front one is next.
    groups: VecDeque<Vec<usize>>,
}

impl Triage {
    /// A triage of `rows` (in `id` order), given which hashes are dead
    /// letters already.
    pub fn new(rows: Vec<TriageRow>, dead_hashes: HashSet<Hash>) -> Triage {
        let all_rows = (0..rows.len()).collect::<Vec<_>>();
        let mut groups = VecDeque::new();
        if !all_rows.is_empty() {
            groups.push_back(all_rows);
        }
        Triage {
            rows,
            dead_hashes,
            groups,
        }
    }

    /// The next step; call again after acting on it.
    pub fn next_step(&mut self) -> TriageStep {
        while let Some(group) = self.groups.front_mut() {
            let blocked = group.iter().enumerate().find_map(|(position, row_idx)| {
                self.rows[*row_idx]
                    .predecessors
                    .iter()
                    .find(|(_, hash)| self.dead_hashes.contains(hash))
                    .map(|(role, hash)| (position, *row_idx, role.clone(), *hash))
            });
            if let Some((position, row_idx, role, predecessor)) = blocked {
                // Rows of the group before this one go first: they are
                // published in the same call once the blocked row is out,
                // and the blocked row's own successors see it as dead.
                group.remove(position);
                self.dead_hashes.insert(self.rows[row_idx].hash);
                return TriageStep::SetAsideBlocked {
                    row_idx,
                    role,
                    predecessor,
                };
            }
            if group.is_empty() {
                self.groups.pop_front();
                continue;
            }
            return TriageStep::Publish(group.clone());
        }
        TriageStep::Done
    }

    /// Cairn stored the group of the last [`TriageStep::Publish`].
    pub fn published(&mut self) {
        self.groups.pop_front();
    }

    /// Cairn refused the group of the last [`TriageStep::Publish`]. Returns
    /// the row to set aside with that refusal if the group was one row;
    /// otherwise splits the group, and the next steps publish its halves.
    pub fn refused(&mut self) -> Option<usize> {
        let mut group = self.groups.pop_front()?;
        if group.len() == 1 {
            let row_idx = group[0];
            self.dead_hashes.insert(self.rows[row_idx].hash);
            return Some(row_idx);
        }
        let right = group.split_off(group.len() / 2);
        self.groups.push_front(right);
        self.groups.push_front(group);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(byte: u8) -> Hash {
        Hash([byte; 32])
    }

    /// Row `i` has hash `i`; `predecessors` lists (row, predecessor) pairs.
    fn rows(n_rows: u8, predecessors: &[(u8, u8)]) -> Vec<TriageRow> {
        (0..n_rows)
            .map(|row| TriageRow {
                hash: hash(row),
                predecessors: predecessors
                    .iter()
                    .filter(|(successor, _)| *successor == row)
                    .map(|(_, predecessor)| ("p".to_owned(), hash(*predecessor)))
                    .collect(),
            })
            .collect()
    }

    /// Drives a triage against a Cairn that refuses the rows in `refused`
    /// (and any group containing one); returns the published rows in order
    /// and the rows set aside in order.
    fn simulate(mut triage: Triage, refused: &[usize]) -> (Vec<usize>, Vec<usize>, usize) {
        let mut published = Vec::new();
        let mut set_aside = Vec::new();
        let mut n_calls = 0;
        loop {
            match triage.next_step() {
                TriageStep::Done => return (published, set_aside, n_calls),
                TriageStep::SetAsideBlocked { row_idx, .. } => set_aside.push(row_idx),
                TriageStep::Publish(group) => {
                    n_calls += 1;
                    if group.iter().any(|row_idx| refused.contains(row_idx)) {
                        set_aside.extend(triage.refused());
                    } else {
                        published.extend(group);
                        triage.published();
                    }
                }
            }
        }
    }

    #[test]
    fn a_clean_batch_is_one_call() {
        let triage = Triage::new(rows(5, &[(1, 0)]), HashSet::new());
        assert_eq!(simulate(triage, &[]), (vec![0, 1, 2, 3, 4], vec![], 1));
    }

    #[test]
    fn a_refused_row_is_found_and_the_others_keep_their_order() {
        for refused_row in 0..8 {
            let triage = Triage::new(rows(8, &[]), HashSet::new());
            let (published, set_aside, n_calls) = simulate(triage, &[refused_row]);
            let expected: Vec<usize> = (0..8).filter(|row| *row != refused_row).collect();
            assert_eq!(published, expected);
            assert_eq!(set_aside, vec![refused_row]);
            // One call for the batch, then two per halving (3 halvings).
            assert!(n_calls <= 1 + 2 * 3, "{n_calls} calls");
        }
    }

    #[test]
    fn successors_of_a_refused_row_are_set_aside_transitively() {
        // 2 is refused; 4 names 2, 6 names 4; 5 names 1 (published).
        let triage = Triage::new(rows(8, &[(4, 2), (6, 4), (5, 1)]), HashSet::new());
        let (published, set_aside, _) = simulate(triage, &[2]);
        assert_eq!(published, vec![0, 1, 3, 5, 7]);
        assert_eq!(set_aside, vec![2, 4, 6]);
    }

    #[test]
    fn rows_naming_earlier_dead_letters_are_set_aside_before_publishing() {
        let dead_before = HashSet::from([hash(200)]);
        let mut triage = Triage::new(rows(3, &[(1, 200), (2, 1)]), dead_before);
        assert_eq!(
            triage.next_step(),
            TriageStep::SetAsideBlocked {
                row_idx: 1,
                role: "p".to_owned(),
                predecessor: hash(200)
            }
        );
        assert_eq!(
            triage.next_step(),
            TriageStep::SetAsideBlocked {
                row_idx: 2,
                role: "p".to_owned(),
                predecessor: hash(1)
            }
        );
        assert_eq!(triage.next_step(), TriageStep::Publish(vec![0]));
        triage.published();
        assert_eq!(triage.next_step(), TriageStep::Done);
    }

    #[test]
    fn every_row_refused_sets_every_row_aside() {
        let triage = Triage::new(rows(5, &[]), HashSet::new());
        let (published, set_aside, _) = simulate(triage, &[0, 1, 2, 3, 4]);
        assert!(published.is_empty());
        assert_eq!(set_aside, vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn an_empty_batch_is_done_at_once() {
        let mut triage = Triage::new(Vec::new(), HashSet::new());
        assert_eq!(triage.next_step(), TriageStep::Done);
    }
}
