using CommandLine;

namespace MitmCache.Cli;

// Listed in `mitmcache --help` only: `mitmcache ca|cache|auth ...` are dispatched to their own verbs
// before the top-level parse (see CommandLineApp.RunAsync).

[Verb("cache", HelpText = "Cache operations: stats, ls, prune, verify (mitmcache cache --help).")]
internal sealed class CacheGroupVerb;

[Verb("ca", HelpText = "Root CA: init, export (mitmcache ca --help).")]
internal sealed class CaGroupVerb;

[Verb("auth", HelpText = "Grants of private images: revoke (mitmcache auth --help).")]
internal sealed class AuthGroupVerb;
