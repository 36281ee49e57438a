namespace MitmCache.ObjectStore;

/// <summary>
/// A registry's answer to <c>GET /v2/</c> without credentials, kept in the bucket so that a parent that never saw the
/// registry can answer a client's ping while it is down: its challenge, or none (open), or its redirect. No credential
/// and no token: only what the registry tells anyone. A realm in it is honoured under the reader's own rule
/// (<see cref="Registry.TokenEndpoint.IsHonoured"/>), exactly as a challenge learned from upstream.
/// </summary>
internal sealed record SharedPing(string Registry, string? WwwAuthenticate, string? Redirect, DateTimeOffset SeenAt)
{
    /// <summary>Whether the object read back names <paramref name="registry"/> and holds a ping answer that may be served as a header.</summary>
    public bool IsValidFor(string registry) =>
        Registry == registry
        && !(WwwAuthenticate is not null && Redirect is not null)
        && (WwwAuthenticate is null || (WwwAuthenticate.Length > 0 && !WwwAuthenticate.Any(char.IsControl)))
        && (Redirect is null || (Uri.TryCreate(Redirect, UriKind.Absolute, out var target) && target.Scheme == Uri.UriSchemeHttps && !Redirect.Any(char.IsControl)));
}
