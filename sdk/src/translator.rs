//! The `translator` world (contract 0.2.0): translates a customer's message
//! into an agent's language and the agent's reply into the customer's.

use crate::PluginInfo;
use crate::bindings::translator::exports::flowhost::plugin0_2_0::translator_plugin;

pub use translator_plugin::{TranslateError, Translation};

/// A translator. Implement it, then call [`export_translator!`].
///
/// [`export_translator!`]: crate::export_translator
pub trait Translator {
    /// The queue's translator configuration, parsed from JSON.
    type Config: serde::de::DeserializeOwned;

    /// Name, version, configuration schema and the capabilities used.
    fn describe() -> PluginInfo;

    /// Translates `text` into `target` (ISO 639-1), from `source` when the
    /// host knows it.
    fn translate(
        config: Self::Config,
        text: &str,
        source: Option<&str>,
        target: &str,
    ) -> Result<Translation, TranslateError>;
}

/// Parses the configuration and calls `T::translate`; used by
/// [`export_translator!`].
///
/// [`export_translator!`]: crate::export_translator
pub fn translator_translate<T: Translator>(
    config: String,
    text: String,
    source: Option<String>,
    target: String,
) -> Result<Translation, TranslateError> {
    let config =
        crate::parse_config::<T::Config>(&config).map_err(TranslateError::InvalidConfig)?;
    T::translate(config, &text, source.as_deref(), &target)
}

/// Exports a type implementing [`Translator`] as the plugin's
/// `translator-plugin`.
///
/// ```ignore
/// flowhost_sdk::export_translator!(MyTranslator);
/// ```
#[macro_export]
macro_rules! export_translator {
    ($plugin:ty) => {
        // The component's exports exist only in the wasm build: natively (a
        // plugin's `cargo test`) the plugin is run through
        // `flowhost_sdk::testing`, and these symbols would not link.
        #[cfg(target_arch = "wasm32")]
        #[doc(hidden)]
        pub struct __FlowhostTranslatorExport;

        #[cfg(not(target_arch = "wasm32"))]
        const _: fn() -> $crate::PluginInfo = <$plugin as $crate::Translator>::describe;

        #[cfg(target_arch = "wasm32")]
        impl $crate::__private::TranslatorGuest for __FlowhostTranslatorExport {
            fn describe() -> $crate::PluginInfo {
                <$plugin as $crate::Translator>::describe()
            }

            fn translate(
                config: ::std::string::String,
                text: ::std::string::String,
                source_language: ::std::option::Option<::std::string::String>,
                target_language: ::std::string::String,
            ) -> ::std::result::Result<
                $crate::translator::Translation,
                $crate::translator::TranslateError,
            > {
                $crate::__private::translator_translate::<$plugin>(
                    config,
                    text,
                    source_language,
                    target_language,
                )
            }
        }

        #[cfg(target_arch = "wasm32")]
        $crate::bindings::translator::export_translator_world!(
            __FlowhostTranslatorExport with_types_in $crate::bindings::translator
        );
    };
}
