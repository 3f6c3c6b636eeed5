//! The `action` world: one step of a decision tree.

use crate::bindings::action::exports::flowhost::plugin::action_plugin;
use crate::{Context, HostError, NamedValue, PluginInfo};

pub use action_plugin::{ActionError, Outcome};

/// A decision-tree action. Implement it, then call [`export_action!`].
///
/// [`export_action!`]: crate::export_action
pub trait Action {
    /// The action's configuration from the flow, rendered by the host's
    /// template engine and parsed from JSON before `run` is called.
    type Config: serde::de::DeserializeOwned;

    /// Name, version, configuration schema and the capabilities used.
    fn describe() -> PluginInfo;

    /// Runs the action once for one conversation.
    fn run(context: &Context, config: Self::Config) -> Result<Outcome, ActionError>;
}

impl Outcome {
    /// An outcome that keeps `value` under `name` in the flow's context.
    pub fn store(name: impl Into<String>, value: &serde_json::Value) -> Self {
        Outcome {
            store: Some(NamedValue {
                name: name.into(),
                value: value.to_string(),
            }),
            next_target: None,
        }
    }

    /// An outcome that makes the flow follow the target `id` next.
    pub fn go_to(id: impl Into<String>) -> Self {
        Outcome {
            store: None,
            next_target: Some(id.into()),
        }
    }
}

// The type is generated, so it cannot derive `Default` itself.
#[allow(clippy::derivable_impls)]
impl Default for Outcome {
    fn default() -> Self {
        Outcome {
            store: None,
            next_target: None,
        }
    }
}

impl From<HostError> for ActionError {
    fn from(error: HostError) -> Self {
        ActionError::Host(error)
    }
}

impl From<crate::http::HttpError> for ActionError {
    fn from(error: crate::http::HttpError) -> Self {
        ActionError::Http(crate::http::explain(&error))
    }
}

/// Parses the configuration and runs `A`; used by [`export_action!`].
///
/// [`export_action!`]: crate::export_action
pub fn run_action<A: Action>(context: Context, config: String) -> Result<Outcome, ActionError> {
    let config = crate::parse_config::<A::Config>(&config).map_err(ActionError::InvalidConfig)?;
    A::run(&context, config)
}

/// Exports a type implementing [`Action`] as the plugin's `action-plugin`.
///
/// ```ignore
/// flowhost_sdk::export_action!(MyAction);
/// ```
#[macro_export]
macro_rules! export_action {
    ($plugin:ty) => {
        // The component's exports exist only in the wasm build: natively (a
        // plugin's `cargo test`) the plugin is run through
        // `flowhost_sdk::testing`, and these symbols would not link.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __FlowhostActionExport;

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::PluginInfo = <$plugin as $crate::Action>::describe;

        #[cfg(target_arch = "wasm32")]
        impl $crate::__private::ActionGuest for __FlowhostActionExport {
            fn describe() -> $crate::PluginInfo {
                <$plugin as $crate::Action>::describe()
            }

            fn run(
                context: $crate::Context,
                config: ::std::string::String,
            ) -> ::std::result::Result<$crate::Outcome, $crate::ActionError> {
                $crate::__private::run_action::<$plugin>(context, config)
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::action::export_action_world!(
            __FlowhostActionExport with_types_in $crate::bindings::action
        );
    };
}
