//! `#[derive(Fact)]`: implements `cairn_client::TypedFact` for a struct
//! whose predecessors are ordinary typed fields.
//!
//! ```
//! use cairn_client::{to_canonical_fact, Fact, Hash, Typed};
//!
//! #[derive(Debug, PartialEq, Fact)]
//! #[fact(type = "Library.Loan")]
//! struct Loan {
//!     #[predecessor(role = "book")]
//!     book: Hash,
//!     member: String,
//! }
//!
//! let loan = Loan { book: Hash::of_bytes(b"a book"), member: "Ada".into() };
//! let fact = to_canonical_fact(&loan).unwrap();
//! let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
//! assert_eq!(json["predecessors"]["book"], loan.book.to_hex());
//! assert_eq!(json["fields"], serde_json::json!({ "member": "Ada" }));
//! let read: Typed<Loan> = Typed::from_parts(fact.hash, 1, json).unwrap();
//! assert_eq!(read.value, loan);
//! ```
//!
//! Fields marked `#[predecessor]` (role = the field's name unless
//! `role = "…"` says otherwise) become the fact's predecessors: `Hash` for a
//! role naming one fact, `Option<Hash>` for an optional one, `Vec<Hash>` (or
//! `BTreeSet<Hash>`) for a set — anything that implements
//! `cairn_client::PredecessorField`. Every other field is the fact's
//! `fields`, through serde: the derive generates a private serde struct with
//! those fields and copies their `#[serde(…)]` attributes (and the
//! container's), so `rename`, `rename_all`, `default` and
//! `skip_serializing_if` work as usual. The crate using the derive needs
//! `cairn-client` and nothing else: serde is reached through it.
//!
//! `#[fact(type = "…", reply_to = Command)]` also implements
//! `cairn_client::Reply` with `Request = Command`: the struct must then have
//! a predecessor field in the role `request` of type `Hash`, and a requester
//! of a `Command` can only await replies of types that say so — the link is
//! checked at compile time.
//!
//! `#[fact(type = "…", version = N, upcasts = function)]` declares the
//! schema version the struct is (`TypedFact::VERSION`, 1 if absent) and the
//! function (`fn(u32) -> Vec<UpcastOperation>`) that answers, for each
//! version from 2 to `N`, the operations reading a fact of the version
//! before as that version — the `upcast` of its schema registration. A
//! value is written with `cairn_version: N` in its fields; a fact written
//! at an older version is read through every step up to `N`:
//!
//! ```
//! use cairn_client::{to_canonical_fact, Fact, Hash, Typed, UpcastOperation};
//!
//! /// Version 2 renamed `amount` to `total`; version 3 added a currency.
//! fn order_upcasts(version: u32) -> Vec<UpcastOperation> {
//!     match version {
//!         2 => vec![UpcastOperation::Rename { from: "/amount".into(), to: "/total".into() }],
//!         3 => vec![UpcastOperation::Default { path: "/currency".into(), value: "EUR".into() }],
//!         _ => Vec::new(),
//!     }
//! }
//!
//! #[derive(Debug, PartialEq, Fact)]
//! #[fact(type = "Shop.Order", version = 3, upcasts = order_upcasts)]
//! struct Order { id: String, total: f64, currency: String }
//!
//! let order = Order { id: "o-1".into(), total: 4.5, currency: "CHF".into() };
//! let fact = to_canonical_fact(&order).unwrap();
//! let json: serde_json::Value = serde_json::from_slice(&fact.canonical).unwrap();
//! assert_eq!(json["fields"]["cairn_version"], 3);
//!
//! // Written at version 1 (no `cairn_version`), read as version 3:
//! let old = serde_json::json!({
//!     "type": "Shop.Order",
//!     "fields": { "id": "o-0", "amount": 2.0 },
//!     "predecessors": {},
//! });
//! let read: Typed<Order> = Typed::from_parts(Hash::of_bytes(b"o-0"), 1, old).unwrap();
//! assert_eq!(read.value, Order { id: "o-0".into(), total: 2.0, currency: "EUR".into() });
//! ```
//!
//! Mistakes are compile errors with a message saying what to write
//! instead — a missing type:
//!
//! ```compile_fail
//! #[derive(cairn_client::Fact)]
//! struct Loan { member: String }
//! ```
//!
//! a reply without the predecessor that names its request:
//!
//! ```compile_fail
//! # use cairn_client::Fact;
//! # #[derive(Fact)] #[fact(type = "Library.IsAvailable")] struct IsAvailable { isbn: String }
//! #[derive(Fact)]
//! #[fact(type = "Library.Availability", reply_to = IsAvailable)]
//! struct Availability { available: bool }
//! ```
//!
//! two fields in one role, or a predecessor field of a type that cannot
//! hold hashes:
//!
//! ```compile_fail
//! # use cairn_client::{Fact, Hash};
//! #[derive(Fact)]
//! #[fact(type = "Library.Loan")]
//! struct Loan {
//!     #[predecessor(role = "book")] book: Hash,
//!     #[predecessor(role = "book")] copy: Hash,
//! }
//! ```
//!
//! ```compile_fail
//! # use cairn_client::Fact;
//! #[derive(Fact)]
//! #[fact(type = "Library.Loan")]
//! struct Loan { #[predecessor] book: String }
//! ```
//!
//! a version that is not one (versions start at 1), or upcasts without a
//! version they could lead to:
//!
//! ```compile_fail
//! # use cairn_client::Fact;
//! #[derive(Fact)]
//! #[fact(type = "Shop.Order", version = 0)]
//! struct Order { id: String }
//! ```
//!
//! ```compile_fail
//! # use cairn_client::{Fact, UpcastOperation};
//! # fn order_upcasts(_: u32) -> Vec<UpcastOperation> { Vec::new() }
//! #[derive(Fact)]
//! #[fact(type = "Shop.Order", upcasts = order_upcasts)]
//! struct Order { id: String }
//! ```
//!
//! The macro is written by hand (with `syn` and `quote`) because it is part
//! of the product's API; it has no other logic than the mapping above.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use quote::{format_ident, quote};
use syn::{parse_macro_input, Attribute, Data, DeriveInput, Fields, LitInt, LitStr, Path, Type};

/// The role a reply names its request in; `Reply` requires it.
const REQUEST_ROLE: &str = "request";

/// Derives `cairn_client::TypedFact` (and `cairn_client::Reply` with
/// `reply_to`); see the crate documentation.
#[proc_macro_derive(Fact, attributes(fact, predecessor, serde))]
pub fn derive_fact(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    match expand(&input) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

/// What `#[fact(…)]` on the struct says.
struct FactAttributes {
    type_name: LitStr,
    reply_to: Option<Path>,
    /// `version = N`: the schema version, checked to be at least 1.
    version: Option<LitInt>,
    /// `upcasts = function`: only with a version above 1.
    upcasts: Option<Path>,
}

/// One field of the struct, sorted into predecessor or plain field.
struct FieldPlan<'a> {
    ident: &'a syn::Ident,
    ty: &'a Type,
    /// `Some(role)` for a predecessor field.
    role: Option<String>,
    /// The field's `#[serde(…)]` attributes, copied to the serde struct.
    serde_attributes: Vec<&'a Attribute>,
}

fn expand(input: &DeriveInput) -> syn::Result<TokenStream2> {
    if !input.generics.params.is_empty() {
        return Err(syn::Error::new_spanned(
            &input.generics,
            "#[derive(Fact)] does not support generic types: a fact type is one concrete shape",
        ));
    }
    let Data::Struct(data) = &input.data else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Fact)] works on structs with named fields (a fact's fields are a JSON object)",
        ));
    };
    let Fields::Named(named) = &data.fields else {
        return Err(syn::Error::new_spanned(
            &input.ident,
            "#[derive(Fact)] works on structs with named fields (a fact's fields are a JSON object)",
        ));
    };
    let attributes = fact_attributes(input)?;
    let plans = named
        .named
        .iter()
        .map(field_plan)
        .collect::<syn::Result<Vec<_>>>()?;
    check_roles(&plans)?;

    let name = &input.ident;
    let type_name = &attributes.type_name;
    let container_serde: Vec<&Attribute> = serde_attributes(&input.attrs);
    let plain: Vec<&FieldPlan> = plans.iter().filter(|plan| plan.role.is_none()).collect();
    let predecessors: Vec<&FieldPlan> = plans.iter().filter(|plan| plan.role.is_some()).collect();

    let plain_idents: Vec<_> = plain.iter().map(|plan| plan.ident).collect();
    let plain_types: Vec<_> = plain.iter().map(|plan| plan.ty).collect();
    let plain_serde: Vec<_> = plain
        .iter()
        .map(|plan| {
            let attributes = &plan.serde_attributes;
            quote!(#(#attributes)*)
        })
        .collect();
    let predecessor_idents: Vec<_> = predecessors.iter().map(|plan| plan.ident).collect();
    let predecessor_types: Vec<_> = predecessors.iter().map(|plan| plan.ty).collect();
    let predecessor_roles: Vec<_> = predecessors
        .iter()
        .map(|plan| plan.role.clone().unwrap_or_default())
        .collect();
    let serialize_struct = format_ident!("__CairnFieldsOf{}", name);
    let deserialize_struct = format_ident!("__CairnFieldsInto{}", name);

    let reply = match &attributes.reply_to {
        Some(request_type) => reply_impl(name, request_type, &plans)?,
        None => TokenStream2::new(),
    };
    let versioning = versioning_items(&attributes);

    Ok(quote! {
        impl ::cairn_client::TypedFact for #name {
            const TYPE_NAME: &'static str = #type_name;

            #versioning

            fn fields(&self) -> ::std::result::Result<
                ::cairn_client::__private::serde_json::Value,
                ::cairn_client::__private::serde_json::Error,
            > {
                #[derive(::cairn_client::__private::serde::Serialize)]
                #[serde(crate = "::cairn_client::__private::serde")]
                #(#container_serde)*
                struct #serialize_struct<'cairn> {
                    #( #plain_serde #plain_idents: &'cairn #plain_types, )*
                    #[serde(skip)]
                    _cairn_lifetime: ::std::marker::PhantomData<&'cairn ()>,
                }
                ::cairn_client::__private::serde_json::to_value(#serialize_struct {
                    #( #plain_idents: &self.#plain_idents, )*
                    _cairn_lifetime: ::std::marker::PhantomData,
                })
            }

            fn predecessors(&self) -> ::cairn_client::Predecessors {
                let predecessors = ::cairn_client::Predecessors::new();
                #(
                    let predecessors = ::cairn_client::PredecessorField::add_to(
                        &self.#predecessor_idents,
                        #predecessor_roles,
                        predecessors,
                    );
                )*
                predecessors
            }

            fn from_fact(
                fields: ::cairn_client::__private::serde_json::Value,
                predecessors: &::cairn_client::Predecessors,
            ) -> ::std::result::Result<Self, ::std::string::String> {
                #[derive(::cairn_client::__private::serde::Deserialize)]
                #[serde(crate = "::cairn_client::__private::serde")]
                #(#container_serde)*
                struct #deserialize_struct {
                    #( #plain_serde #plain_idents: #plain_types, )*
                }
                let fields: #deserialize_struct =
                    ::cairn_client::__private::serde_json::from_value(fields)
                        .map_err(|error| error.to_string())?;
                ::std::result::Result::Ok(#name {
                    #( #plain_idents: fields.#plain_idents, )*
                    #(
                        #predecessor_idents: <#predecessor_types as ::cairn_client::PredecessorField>::read_from(
                            predecessors,
                            #predecessor_roles,
                        )?,
                    )*
                })
            }
        }

        #reply
    })
}

/// `VERSION` and `upcasts` of the `TypedFact` impl, where declared (the
/// trait's defaults otherwise). The upper bound of a version is the SDK's
/// constant, checked where the impl compiles.
fn versioning_items(attributes: &FactAttributes) -> TokenStream2 {
    let mut items = TokenStream2::new();
    if let Some(version) = &attributes.version {
        items.extend(quote! {
            const VERSION: u32 = {
                ::std::assert!(
                    #version <= ::cairn_client::limits::SCHEMA_VERSION_MAX,
                    "a schema version is at most cairn_client::limits::SCHEMA_VERSION_MAX",
                );
                #version
            };
        });
    }
    if let Some(upcasts) = &attributes.upcasts {
        items.extend(quote! {
            fn upcasts(version: u32) -> ::std::vec::Vec<::cairn_client::UpcastOperation> {
                #upcasts(version)
            }
        });
    }
    items
}

/// Reads `#[fact(type = "…", reply_to = Path, version = N, upcasts = Path)]`.
fn fact_attributes(input: &DeriveInput) -> syn::Result<FactAttributes> {
    let mut type_name = None;
    let mut reply_to = None;
    let mut version = None;
    let mut upcasts = None;
    for attribute in input.attrs.iter().filter(|a| a.path().is_ident("fact")) {
        attribute.parse_nested_meta(|meta| {
            if meta.path.is_ident("type") {
                type_name = Some(meta.value()?.parse::<LitStr>()?);
                Ok(())
            } else if meta.path.is_ident("reply_to") {
                reply_to = Some(meta.value()?.parse::<Path>()?);
                Ok(())
            } else if meta.path.is_ident("version") {
                let literal = meta.value()?.parse::<LitInt>()?;
                if literal.base10_parse::<u32>()? == 0 {
                    return Err(syn::Error::new_spanned(
                        &literal,
                        "schema versions start at 1 (a fact without cairn_version is version 1)",
                    ));
                }
                version = Some(literal);
                Ok(())
            } else if meta.path.is_ident("upcasts") {
                upcasts = Some(meta.value()?.parse::<Path>()?);
                Ok(())
            } else {
                Err(meta.error(
                    "unknown #[fact] attribute: expected `type = \"…\"`, `reply_to = Type`, \
                     `version = N` or `upcasts = function`",
                ))
            }
        })?;
    }
    let type_name = type_name.ok_or_else(|| {
        syn::Error::new_spanned(
            &input.ident,
            "#[derive(Fact)] needs the fact type: #[fact(type = \"Domain.Name\")]",
        )
    })?;
    if type_name.value().is_empty() {
        return Err(syn::Error::new_spanned(
            &type_name,
            "the fact type must not be empty",
        ));
    }
    let version_number = match &version {
        Some(literal) => literal.base10_parse::<u32>()?,
        None => 1,
    };
    if let (Some(upcasts), 1) = (&upcasts, version_number) {
        return Err(syn::Error::new_spanned(
            upcasts,
            "upcasts lead from one version to the next, so they need `version = N` with N of 2 or more",
        ));
    }
    Ok(FactAttributes {
        type_name,
        reply_to,
        version,
        upcasts,
    })
}

/// Sorts one field: `#[predecessor]` or `#[predecessor(role = "…")]` makes
/// it a predecessor.
fn field_plan(field: &syn::Field) -> syn::Result<FieldPlan<'_>> {
    let ident = field
        .ident
        .as_ref()
        .ok_or_else(|| syn::Error::new_spanned(field, "fields must be named"))?;
    let mut role = None;
    for attribute in field
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("predecessor"))
    {
        let mut named_role = None;
        if !matches!(attribute.meta, syn::Meta::Path(_)) {
            attribute.parse_nested_meta(|meta| {
                if meta.path.is_ident("role") {
                    named_role = Some(meta.value()?.parse::<LitStr>()?.value());
                    Ok(())
                } else {
                    Err(meta.error("unknown #[predecessor] attribute: expected `role = \"…\"`"))
                }
            })?;
        }
        role = Some(named_role.unwrap_or_else(|| ident.to_string()));
    }
    let serde_attributes = serde_attributes(&field.attrs);
    if role.is_some() && !serde_attributes.is_empty() {
        return Err(syn::Error::new_spanned(
            field,
            "a #[predecessor] field is not one of the fact's fields: #[serde] does not apply to it",
        ));
    }
    Ok(FieldPlan {
        ident,
        ty: &field.ty,
        role,
        serde_attributes,
    })
}

/// Two fields cannot share a role: a fact names each role once.
fn check_roles(plans: &[FieldPlan]) -> syn::Result<()> {
    let mut seen = std::collections::BTreeSet::new();
    for plan in plans {
        if let Some(role) = &plan.role {
            if role.is_empty() {
                return Err(syn::Error::new_spanned(
                    plan.ident,
                    "a role must not be empty",
                ));
            }
            if !seen.insert(role.clone()) {
                return Err(syn::Error::new_spanned(
                    plan.ident,
                    format!("two fields name the predecessor role {role:?}"),
                ));
            }
        }
    }
    Ok(())
}

/// `impl Reply`: the request is the predecessor field in the role `request`.
fn reply_impl(
    name: &syn::Ident,
    request_type: &Path,
    plans: &[FieldPlan],
) -> syn::Result<TokenStream2> {
    let request_field = plans
        .iter()
        .find(|plan| plan.role.as_deref() == Some(REQUEST_ROLE))
        .ok_or_else(|| {
            syn::Error::new_spanned(
                name,
                "a reply (`reply_to`) names its request in the role \"request\": add `#[predecessor(role = \"request\")] request: Hash`",
            )
        })?;
    let ident = request_field.ident;
    Ok(quote! {
        impl ::cairn_client::Reply for #name {
            type Request = #request_type;

            fn request(&self) -> ::cairn_client::Hash {
                self.#ident
            }
        }
    })
}

/// The `#[serde(…)]` attributes among `attributes`.
fn serde_attributes(attributes: &[Attribute]) -> Vec<&Attribute> {
    attributes
        .iter()
        .filter(|attribute| attribute.path().is_ident("serde"))
        .collect()
}
