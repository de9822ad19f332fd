// Package openfeature is an OpenFeature provider over config.Flags, so services can
// evaluate etcd-held flags through the OpenFeature SDK
// (github.com/open-feature/go-sdk).
//
// It lives apart from config so that config's users do not import the SDK.
//
// # Guarantees
//
// Evaluations read memory only (config.Flags). Every flag change in etcd is reported as a
// PROVIDER_CONFIGURATION_CHANGED event naming the flag. Reasons are the flag's: STATIC,
// DEFAULT, TARGETING_MATCH, SPLIT, DISABLED; errors map to FLAG_NOT_FOUND, TYPE_MISMATCH,
// PARSE_ERROR (an invalid definition) and PROVIDER_NOT_READY, with the caller's default.
//
// # Lifecycle
//
// The SDK calls Init (waits for the flags to load) and Shutdown (stops the event
// forwarding and closes the event channel). The provider does not own the Flags: close
// them after the SDK shut the provider down.
//
//	flags, _ := config.NewFlags(cli, "/app/flags")
//	defer flags.Close()
//	_ = openfeature.SetProviderAndWait(cfgof.New(flags))
//	client := openfeature.NewClient("app")
//	on, _ := client.BooleanValue(ctx, "new-checkout", false, openfeature.NewEvaluationContext("user-42", nil))
package openfeature
