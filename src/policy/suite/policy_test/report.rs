//! The outcome of a run: every check, skip, note and suite error, in order.

/// One decided (principal, resource, action) of a test.
#[derive(Debug, Clone)]
pub struct CheckOutcome {
    /// The suite file, relative to the directory run.
    pub file: String,
    pub suite: String,
    pub test: String,
    pub principal: String,
    pub resource: String,
    pub action: String,
    /// The expected effect: true for ALLOW.
    pub want: bool,
    /// The decision, or why none could be made (a time-based condition without `now`).
    pub got: Result<bool, String>,
}

impl CheckOutcome {
    pub fn passed(&self) -> bool {
        self.got.as_ref().is_ok_and(|got| *got == self.want)
    }
}

/// What running the suites produced, in order.
#[derive(Debug, Clone)]
pub enum Event {
    Check(CheckOutcome),
    /// A skipped suite or test, as the line to show.
    Skip(String),
    /// A test whose `outputs` expectations are accepted but not evaluated (vecgate does not
    /// run rule outputs, which never change a decision): its checks are judged on effects.
    OutputsNotChecked { suite: String, test: String },
    /// A suite that could not run at all.
    SuiteError {
        file: String,
        message: String,
    },
}

/// Every event of a run, with the policy loader's warnings.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub events: Vec<Event>,
    pub warnings: Vec<String>,
}

impl Report {
    pub fn checks(&self) -> impl Iterator<Item = &CheckOutcome> {
        self.events.iter().filter_map(|e| match e {
            Event::Check(c) => Some(c),
            _ => None,
        })
    }

    pub fn passed(&self) -> usize {
        self.checks().filter(|c| c.passed()).count()
    }

    pub fn failed(&self) -> usize {
        self.checks().filter(|c| !c.passed()).count()
    }

    pub fn suite_errors(&self) -> usize {
        self.events
            .iter()
            .filter(|e| matches!(e, Event::SuiteError { .. }))
            .count()
    }
}
