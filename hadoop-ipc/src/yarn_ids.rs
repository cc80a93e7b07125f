//! YARN's ids as YARN prints them, for clients and test servers alike.

use crate::proto::yarn::{ApplicationAttemptIdProto, ApplicationIdProto, ContainerIdProto};

/// `application_<cluster timestamp>_<id, 4 digits>`.
pub fn application_id_text(id: &ApplicationIdProto) -> String {
    format!("application_{}_{:04}", id.cluster_timestamp.unwrap_or(0), id.id.unwrap_or(0))
}

/// `appattempt_<ts>_<app>_<attempt, 6 digits>`, also the user name of an attempt's tokens.
pub fn attempt_id_text(a: &ApplicationAttemptIdProto) -> String {
    let app = a.application_id.unwrap_or_default();
    format!("appattempt_{}_{:04}_{:06}", app.cluster_timestamp.unwrap_or(0), app.id.unwrap_or(0), a.attempt_id.unwrap_or(0))
}

/// `container_<ts>_<app>_<attempt, 2 digits>_<n, 6 digits>`.
pub fn container_id_text(id: Option<&ContainerIdProto>) -> String {
    let Some(id) = id else { return "container_?".into() };
    let attempt = id.app_attempt_id.unwrap_or_default();
    let app = attempt.application_id.unwrap_or_default();
    format!(
        "container_{}_{:04}_{:02}_{:06}",
        app.cluster_timestamp.unwrap_or(0),
        app.id.unwrap_or(0),
        attempt.attempt_id.unwrap_or(0),
        id.id.unwrap_or(0)
    )
}
