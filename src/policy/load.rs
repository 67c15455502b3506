//! Loading a policy directory into a validated [`PolicySet`](super::model::PolicySet).
