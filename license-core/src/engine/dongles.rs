//! The engine's dongle table: every dongle ever seen (so AppSlot counts survive a key being
//! pulled and plugged back), whether it is present now, and DngNr resolution (the n-th
//! present dongle, from 1; 0 is accepted as the first, as some callers pass 0), and the
//! r-API calls that read a dongle (count, serial number, data variables).

use std::collections::BTreeMap;

use super::Engine;
use super::appslot::AppSlot;
use crate::dongle::{DongleDescriptor, Presence};
use crate::error::ErrorCode;

/// One dongle and its AppSlots.
#[derive(Debug)]
pub(crate) struct DongleEntry {
    pub(crate) desc: DongleDescriptor,
    pub(crate) slots: BTreeMap<u16, AppSlot>,
}

impl DongleEntry {
    fn new(desc: DongleDescriptor) -> Self {
        let slots = desc
            .slots
            .iter()
            .map(|d| (d.slot, AppSlot::new(d)))
            .collect();
        Self { desc, slots }
    }

    pub(crate) fn present(&self) -> bool {
        self.desc.presence == Presence::Present
    }

    /// Takes new names and limits, keeping the seats taken.
    fn refresh(&mut self, desc: DongleDescriptor) {
        for def in &desc.slots {
            let slot = self
                .slots
                .entry(def.slot)
                .or_insert_with(|| AppSlot::new(def));
            slot.name.clone_from(&def.name);
            slot.limit = def.limit;
        }
        self.desc = desc;
    }
}

/// A change of the table, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DongleChange {
    /// A dongle became present.
    Arrived(String),
    /// A dongle is present but unusable.
    Inaccessible(String, String),
    /// A dongle went away.
    Left(String),
}

#[derive(Debug, Default)]
pub(crate) struct DongleTable {
    pub(crate) entries: Vec<DongleEntry>,
}

impl DongleTable {
    /// Replaces what is present with `found`; dongles not in it become absent.
    pub(crate) fn update(&mut self, found: Vec<DongleDescriptor>) -> Vec<DongleChange> {
        let mut changes = Vec::new();
        let mut seen = vec![false; self.entries.len()];
        for desc in found {
            let label = format!("{} ({}, {})", desc.name, desc.kind, desc.key);
            match self.entries.iter().position(|e| e.desc.key == desc.key) {
                Some(i) => {
                    seen[i] = true;
                    let before = self.entries[i].desc.presence.clone();
                    if before != desc.presence {
                        changes.push(change_for(&desc.presence, label));
                    }
                    self.entries[i].refresh(desc);
                }
                None => {
                    changes.push(change_for(&desc.presence, label));
                    self.entries.push(DongleEntry::new(desc));
                    seen.push(true);
                }
            }
        }
        for (entry, seen) in self.entries.iter_mut().zip(seen) {
            if !seen && entry.desc.presence != Presence::Absent {
                entry.desc.presence = Presence::Absent;
                changes.push(DongleChange::Left(format!(
                    "{} ({}, {})",
                    entry.desc.name, entry.desc.kind, entry.desc.key
                )));
            }
        }
        changes
    }

    pub(crate) fn present_count(&self) -> usize {
        self.entries.iter().filter(|e| e.present()).count()
    }

    /// The index of dongle `dng_nr` if it is present and answers to `user_code`.
    pub(crate) fn resolve(&self, dng_nr: u16, user_code: i32) -> Result<usize, ErrorCode> {
        let nth = usize::from(dng_nr.max(1)) - 1;
        let (index, entry) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.present())
            .nth(nth)
            .ok_or(ErrorCode::NoDongle)?;
        match entry.desc.user_code {
            Some(code) if code != user_code => Err(ErrorCode::NoDongle),
            _ => Ok(index),
        }
    }
}

fn change_for(presence: &Presence, label: String) -> DongleChange {
    match presence {
        Presence::Present => DongleChange::Arrived(label),
        Presence::Inaccessible(why) => DongleChange::Inaccessible(label, why.clone()),
        Presence::Absent => DongleChange::Left(label),
    }
}

/// The dongle reads of the r-API, and names for logs and events.
impl Engine {
    /// `rDongle_Count`: the number of dongles present.
    ///
    /// # Errors
    /// -102 when there is none.
    pub fn dongle_count(&self) -> Result<i32, ErrorCode> {
        match self.dongles.present_count() {
            0 => Err(ErrorCode::NoDongle),
            n => Ok(i32::try_from(n).unwrap_or(i32::MAX)),
        }
    }

    /// `rDongle_ReadSerNr`.
    ///
    /// # Errors
    /// -102 no such dongle, -302 serial unknown (a USB key without `Sernr=`).
    pub fn read_serial(&self, dng_nr: u16, user_code: i32) -> Result<i32, ErrorCode> {
        let d = self.dongles.resolve(dng_nr, user_code)?;
        self.dongles.entries[d]
            .desc
            .serial
            .ok_or(ErrorCode::Unsupported)
    }

    /// `rDongle_ReadDataEx`: `count` data variables from `fpos` (0-based).
    ///
    /// # Errors
    /// -102 no such dongle, -302 no data (USB key).
    pub fn read_data(
        &self,
        dng_nr: u16,
        user_code: i32,
        fpos: u16,
        count: u16,
    ) -> Result<Vec<i32>, ErrorCode> {
        let d = self.dongles.resolve(dng_nr, user_code)?;
        let desc = &self.dongles.entries[d].desc;
        if !desc.reads_data {
            return Err(ErrorCode::Unsupported);
        }
        let start = usize::from(fpos).min(desc.data.len());
        let end = start
            .saturating_add(usize::from(count))
            .min(desc.data.len());
        Ok(desc.data[start..end].to_vec())
    }

    pub(super) fn dongle_name(&self, dongle: usize) -> String {
        self.dongles
            .entries
            .get(dongle)
            .map_or_else(String::new, |e| e.desc.name.clone())
    }

    pub(super) fn slot_name(&self, dongle: usize, slot: u16) -> String {
        self.dongles
            .entries
            .get(dongle)
            .and_then(|e| e.slots.get(&slot))
            .map_or_else(|| format!("AppSlot{slot}"), |s| s.name.clone())
    }
}
