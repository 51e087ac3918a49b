//! The library loans service, written on Cairn's Rust SDK: books and
//! members as facts, loans and returns written through a transactional
//! outbox in the service's SQLite database, availability answered over
//! request/reply, and reminders for overdue loans, delivered by Cairn when
//! each loan falls due and handled once through the inbox.

#![forbid(unsafe_code)]

mod facts;
mod library;

pub use facts::{Availability, Book, IsAvailable, Loan, Member, ReminderSent, Return};
pub use library::{reminder_handler, Library, LibraryError, REMINDERS_SUBSCRIPTION};
