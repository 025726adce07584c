//! Why an integration event was not recorded.

/// A refused [`super::IntegrationCommand`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrationError {
    /// This aggregate already holds its event (each integration event is an
    /// aggregate of its own, published once).
    #[error("this integration event was already published")]
    AlreadyPublished,
    /// The subject names another hub.
    #[error("the subject belongs to hub '{subject_hub}', but this hub is '{hub_id}'; publish on hub.{hub_id}.<domain>.<action>")]
    ForeignHub {
        /// The subject's second token.
        subject_hub: String,
        /// This hub's id.
        hub_id: String,
    },
}
