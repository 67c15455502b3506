//! What both databases' route tables share: the collection actions, the HTTP verbs they
//! route on, and the strict check of query strings.

/// The action checked on a collection (resource kind `collection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectionAction {
    Read,
    Create,
    Update,
    Delete,
}

impl CollectionAction {
    /// The policy action name.
    pub fn name(self) -> &'static str {
        match self {
            CollectionAction::Read => "read",
            CollectionAction::Create => "create",
            CollectionAction::Update => "update",
            CollectionAction::Delete => "delete",
        }
    }
}

/// Why a query string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("the operation {op} takes no query parameter {param:?}")]
    UnknownQueryParam { op: &'static str, param: String },
    #[error("the query parameter {param:?} is given twice")]
    DuplicateQueryParam { param: String },
    #[error("the query parameter {param:?} has an invalid value")]
    InvalidQueryValue { param: String },
    #[error("the query string is malformed")]
    MalformedQuery,
}

/// Checks a raw query string (without `?`) for both backends: `name=value` pairs, each name at
/// most once, no encoded characters (`%`, `+`: no valid value needs them). `param` answers
/// `None` for a name the operation does not take, else whether the value is valid.
pub fn check_query_params(
    op_name: &'static str,
    query: Option<&str>,
    param: impl Fn(&str, &str) -> Option<bool>,
) -> Result<(), RouteError> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(());
    };
    let mut seen: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').ok_or(RouteError::MalformedQuery)?;
        if name.is_empty() || pair.contains(['%', '+', '#']) {
            return Err(RouteError::MalformedQuery);
        }
        let Some(valid) = param(name, value) else {
            return Err(RouteError::UnknownQueryParam {
                op: op_name,
                param: name.to_string(),
            });
        };
        if seen.contains(&name) {
            return Err(RouteError::DuplicateQueryParam {
                param: name.to_string(),
            });
        }
        seen.push(name);
        if !valid {
            return Err(RouteError::InvalidQueryValue {
                param: name.to_string(),
            });
        }
    }
    Ok(())
}

/// The HTTP methods the databases route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Verb {
    /// `head_is_get`: the database answers HEAD like GET (Chroma's axum does; Qdrant's actix
    /// routes do not, so there HEAD is no route at all).
    pub(crate) fn of(method: &http::Method, head_is_get: bool) -> Option<Verb> {
        use http::Method;
        [
            (Method::GET, Verb::Get),
            (Method::POST, Verb::Post),
            (Method::PUT, Verb::Put),
            (Method::PATCH, Verb::Patch),
            (Method::DELETE, Verb::Delete),
        ]
        .into_iter()
        .find_map(|(known, verb)| (*method == known).then_some(verb))
        .or_else(|| (head_is_get && *method == Method::HEAD).then_some(Verb::Get))
    }
}
