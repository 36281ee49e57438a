namespace MitmCache.Registry;

/// <summary>
/// A parsed <c>WWW-Authenticate: Bearer ...</c> challenge (distribution docs/spec/auth/token.md).
/// <see cref="Realm"/> is an absolute http(s) URI; the other parameters are optional.
/// <see cref="Error"/> is e.g. <c>insufficient_scope</c> on a 401 for a token that lacked a scope.
/// </summary>
internal sealed record BearerChallenge(Uri Realm, string? Service, string? Scope, string? Error);
