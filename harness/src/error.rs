//! The one error type of the library's commands and the exit code it carries: the CI contract
//! (README.md, "Exit codes"; design.md). [`Exit::code`] is the only place a code becomes a
//! number; everything else passes an [`Exit`] along.
//!
//! ```text
//! 0 ok · 1 not met / regression · 2 bad input · 3 inconclusive · 4 invalid
//! 5 cut short (a runner or sensor failed mid-run; finished repeats kept) · 130/143 interrupted
//! ```
//!
//! An [`Error`] is made where the code is known: `Error::bad_input(e)`, `Error::invalid(e)`,
//! `Error::cut_short(e)`. Anything converted with `?` (`From`) is classified by what is in its
//! chain ([`classify`]): a validity contradiction is invalid (4), everything else is bad input
//! (2). A run says itself when it was cut short: only it knows whether work had begun.

use std::fmt;

/// How a command ended, as the process will say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exit {
    /// 0: done; target met; gate passed.
    Ok,
    /// 1: target not met; gate: a regression.
    NotMet,
    /// 2: bad input or usage, found before any work (or nothing to judge).
    BadInput,
    /// 3: inconclusive; gate: cannot decide.
    Inconclusive,
    /// 4: an invalid run, or figures that contradict themselves.
    Invalid,
    /// 5: a runner or sensor failed mid-run; the finished repeats are kept.
    CutShort,
    /// 128 + the signal: 130 SIGINT, 143 SIGTERM.
    Interrupted(i32),
}

impl Exit {
    /// The process exit code: the one mapping.
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::NotMet => 1,
            Exit::BadInput => 2,
            Exit::Inconclusive => 3,
            Exit::Invalid => 4,
            Exit::CutShort => 5,
            Exit::Interrupted(signal) => u8::try_from(128 + signal.clamp(0, 127)).unwrap_or(u8::MAX),
        }
    }

    /// How bad an outcome is, for [`Exit::worst`]: ok < not met < inconclusive < invalid (the
    /// order verdicts combine in, README) < cut short < bad input < interrupted.
    fn severity(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::NotMet => 1,
            Exit::Inconclusive => 2,
            Exit::Invalid => 3,
            Exit::CutShort => 4,
            Exit::BadInput => 5,
            Exit::Interrupted(_) => 6,
        }
    }

    /// The worse of two outcomes.
    pub fn worst(self, other: Exit) -> Exit {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }

    /// The worst of several outcomes; `None` for none.
    pub fn worst_of(exits: impl IntoIterator<Item = Exit>) -> Option<Exit> {
        exits.into_iter().reduce(Exit::worst)
    }
}

/// Written as its number (`"exit_code": 4` in `gate --json`).
impl serde::Serialize for Exit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.code())
    }
}

/// An error with the exit code it ends the process with.
///
/// Not a `std::error::Error` itself (like `anyhow::Error`), so that any error converts into it
/// with `?`.
pub struct Error {
    exit: Exit,
    source: anyhow::Error,
}

impl Error {
    pub fn new(exit: Exit, source: impl Into<anyhow::Error>) -> Error {
        Error { exit, source: source.into() }
    }

    /// Exit 2: bad input or usage.
    pub fn bad_input(source: impl Into<anyhow::Error>) -> Error {
        Error::new(Exit::BadInput, source)
    }

    /// Exit 4: an invalid run, or a file whose figures contradict themselves.
    pub fn invalid(source: impl Into<anyhow::Error>) -> Error {
        Error::new(Exit::Invalid, source)
    }

    /// Exit 5: the work began and something failed before it ended; finished repeats are kept.
    pub fn cut_short(source: impl Into<anyhow::Error>) -> Error {
        Error::new(Exit::CutShort, source)
    }

    pub fn exit(&self) -> Exit {
        self.exit
    }

    /// The underlying error, with its chain.
    pub fn source(&self) -> &anyhow::Error {
        &self.source
    }

    pub fn into_source(self) -> anyhow::Error {
        self.source
    }

    /// Adds context to the message; the exit code stays.
    pub fn context(self, context: impl fmt::Display + Send + Sync + 'static) -> Error {
        Error { exit: self.exit, source: self.source.context(context) }
    }
}

/// The exit code of an error that carries none of its own: 4 for a validity contradiction
/// anywhere in its chain, else 2.
pub fn classify(e: &anyhow::Error) -> Exit {
    if e.chain().any(|c| c.is::<crate::validity::Contradiction>()) {
        Exit::Invalid
    } else {
        Exit::BadInput
    }
}

impl<E: Into<anyhow::Error>> From<E> for Error {
    fn from(e: E) -> Error {
        let source = e.into();
        Error { exit: classify(&source), source }
    }
}

/// The whole chain, `outer: inner: ...`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#}", self.source)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} (exit {}): {:?}", self.exit, self.exit.code(), self.source)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_mapping_to_numbers() {
        let all = [
            (Exit::Ok, 0),
            (Exit::NotMet, 1),
            (Exit::BadInput, 2),
            (Exit::Inconclusive, 3),
            (Exit::Invalid, 4),
            (Exit::CutShort, 5),
            (Exit::Interrupted(libc::SIGINT), 130),
            (Exit::Interrupted(libc::SIGTERM), 143),
        ];
        for (e, n) in all {
            assert_eq!(e.code(), n, "{e:?}");
        }
        assert_eq!(serde_json::to_string(&Exit::Invalid).unwrap(), "4");
    }

    #[test]
    fn worst_follows_the_verdict_order_then_failures() {
        use Exit::*;
        assert_eq!(Exit::worst_of([]), None);
        assert_eq!(Exit::worst_of([Ok, NotMet]), Some(NotMet));
        assert_eq!(Exit::worst_of([NotMet, Inconclusive, Ok]), Some(Inconclusive));
        assert_eq!(Exit::worst_of([Inconclusive, Invalid, NotMet]), Some(Invalid));
        assert_eq!(Invalid.worst(CutShort), CutShort);
        assert_eq!(CutShort.worst(BadInput), BadInput);
        assert_eq!(BadInput.worst(Interrupted(2)), Interrupted(2));
        assert_eq!(Ok.worst(Ok), Ok);
    }

    #[test]
    fn question_mark_classifies_by_the_chain() {
        fn io() -> Result<()> {
            Err(std::io::Error::other("disk on fire"))?
        }
        let e = io().unwrap_err();
        assert_eq!(e.exit(), Exit::BadInput);
        assert_eq!(e.to_string(), "disk on fire");
        let c = crate::validity::Contradiction {
            path: "r.json".into(),
            index: 1,
            seed: 0,
            claim: "says it is valid",
            finding: "it is not".into(),
        };
        let e: Error = anyhow::Error::new(c).context("checking r.json").into();
        assert_eq!(e.exit(), Exit::Invalid);
        assert!(e.to_string().starts_with("checking r.json: "), "{e}");
        let e = Error::cut_short(anyhow::anyhow!("runner died")).context("2 of 3 repeats kept");
        assert_eq!((e.exit(), e.to_string().as_str()), (Exit::CutShort, "2 of 3 repeats kept: runner died"));
    }
}
