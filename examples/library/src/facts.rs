//! The library's facts: what it records in Cairn and the question it
//! answers there. Identity is content, so a fact that describes one thing
//! (a book, a member, a return of a loan, a reminder about a loan) has none
//! of its own, while a loan, of which two may look alike, carries a
//! `loan_id`.

use cairn_client::{Fact, Hash};
use time::OffsetDateTime;

/// A book in the catalogue.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Book")]
pub struct Book {
    /// Its ISBN.
    pub isbn: String,
    /// Its title.
    pub title: String,
}

/// A member, who may borrow books.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Member")]
pub struct Member {
    /// The member's name.
    pub name: String,
}

/// A book lent to a member until `due_at`. Cairn delivers it to the
/// reminder subscription only once it is due: `cairn_not_before` is the
/// field whose time delays delivery.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Loan")]
pub struct Loan {
    /// The book lent.
    #[predecessor]
    pub book: Hash,
    /// The borrower.
    #[predecessor]
    pub member: Hash,
    /// Makes two loans of the same book to the same member, due at the
    /// same time, two facts rather than one.
    pub loan_id: String,
    /// When the book is due back.
    #[serde(rename = "cairn_not_before", with = "time::serde::rfc3339")]
    pub due_at: OffsetDateTime,
}

/// The book of `loan` came back: a tombstone of the loan.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Return")]
pub struct Return {
    /// The loan ended.
    #[predecessor]
    pub loan: Hash,
}

/// The borrower of an overdue loan was reminded (once per loan).
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.ReminderSent")]
pub struct ReminderSent {
    /// The overdue loan.
    #[predecessor]
    pub loan: Hash,
}

/// "Is this book on the shelf?", asked as a request.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.IsAvailable")]
pub struct IsAvailable {
    /// The book asked about.
    #[predecessor]
    pub book: Hash,
}

/// The answer to an [`IsAvailable`] request.
#[derive(Clone, Debug, PartialEq, Fact)]
#[fact(type = "Library.Availability", reply_to = IsAvailable)]
pub struct Availability {
    /// The request answered.
    #[predecessor]
    pub request: Hash,
    /// Whether the book has no open loan.
    pub available: bool,
}
