//! Glue for `volo-thrift` 0.12 peers: what volo-build would generate, written
//! by hand so that Weft's interop tests and benchmarks share one copy.
//!
//! [`volo_entry_message!`](crate::volo_entry_message) implements
//! `volo_thrift::EntryMessage` for an enum of pilota-generated argument or
//! result structs, and [`MkVoloClient`] lets `volo_thrift`'s
//! `ClientBuilder::build` return the untyped client, which a typed wrapper
//! then calls through `volo::service::Service`.

/// What volo-build generates as `XRequestSend`/`XResponseRecv` (and their
/// mirror images): an enum of the method's struct, chosen by name.
///
/// ```ignore
/// weft_interop::volo_entry_message!(
///     /// The arguments of every `Bench` method, for Volo.
///     VoloBenchRequest { "echo" => Echo(BenchEchoArgsSend), }
/// );
/// ```
#[macro_export]
macro_rules! volo_entry_message {
    ($(#[$m:meta])* $vis:vis $name:ident { $($method:literal => $variant:ident($ty:ty),)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq)]
        $vis enum $name {
            $(#[allow(missing_docs)] $variant($ty),)*
        }

        impl $crate::__private::volo_thrift::EntryMessage for $name {
            fn encode<T: $crate::__private::thrift::TOutputProtocol>(
                &self,
                protocol: &mut T,
            ) -> Result<(), $crate::__private::thrift::ThriftException> {
                match self {
                    $(Self::$variant(m) => $crate::__private::thrift::Message::encode(m, protocol),)*
                }
            }

            fn decode<T: $crate::__private::thrift::TInputProtocol>(
                protocol: &mut T,
                msg_ident: &$crate::__private::thrift::TMessageIdentifier,
            ) -> Result<Self, $crate::__private::thrift::ThriftException> {
                match &*msg_ident.name {
                    $($method => Ok(Self::$variant(
                        <$ty as $crate::__private::thrift::Message>::decode(protocol)?,
                    )),)*
                    other => Err($crate::__private::thrift::new_application_exception(
                        $crate::__private::thrift::ApplicationExceptionKind::UNKNOWN_METHOD,
                        format!("unknown method {other}"),
                    )),
                }
            }

            async fn decode_async<T: $crate::__private::thrift::TAsyncInputProtocol>(
                protocol: &mut T,
                msg_ident: &$crate::__private::thrift::TMessageIdentifier,
            ) -> Result<Self, $crate::__private::thrift::ThriftException> {
                match &*msg_ident.name {
                    $($method => Ok(Self::$variant(
                        <$ty as $crate::__private::thrift::Message>::decode_async(protocol).await?,
                    )),)*
                    other => Err($crate::__private::thrift::new_application_exception(
                        $crate::__private::thrift::ApplicationExceptionKind::UNKNOWN_METHOD,
                        format!("unknown method {other}"),
                    )),
                }
            }

            fn size<T: $crate::__private::thrift::TLengthProtocol>(&self, protocol: &mut T) -> usize {
                match self {
                    $(Self::$variant(m) => $crate::__private::thrift::Message::size(m, protocol),)*
                }
            }
        }
    };
}

/// Makes `volo_thrift::client::ClientBuilder::build` return the
/// `volo_thrift::Client` itself, for a typed wrapper to hold (the generated
/// `MkXGenericClient` wraps it in the typed client instead).
#[derive(Debug, Clone, Copy, Default)]
pub struct MkVoloClient;

impl<S> volo::client::MkClient<volo_thrift::Client<S>> for MkVoloClient {
    type Target = volo_thrift::Client<S>;

    fn mk_client(&self, service: volo_thrift::Client<S>) -> Self::Target {
        service
    }
}
