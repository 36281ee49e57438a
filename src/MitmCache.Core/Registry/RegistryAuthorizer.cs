using System.Net;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

internal enum AccessDecision
{
    /// <summary>Serve from cache.</summary>
    Allowed,
    /// <summary>Upstream refused this client (401/403/404): pass its answer on.</summary>
    Refused,
    /// <summary>No proof possible: upstream unreachable and the repository is not known to be public.</summary>
    Unavailable,
}

internal sealed record AccessResult(AccessDecision Decision, HttpResponseMessage? Response = null);

/// <summary>
/// Decides whether a cached digest may be served to this client under this repository path.
/// A digest is only ever served under a repository it was seen in (as distribution links blobs to
/// repositories), and only to a client upstream has authorized for that repository, unless the
/// repository is public. Without proof and without upstream, it fails closed.
/// "Public" is a cached answer like a tag: online, it is re-proven with upstream once it is older than
/// the manifest TTL, so a repository made private upstream stops being served to everyone; offline,
/// it stands.
/// </summary>
internal sealed class RegistryAuthorizer(BlobCache cache, AccessGrants grants, RegistryUpstream upstream, AccessTokens tokens, RegistryChallenges challenges, ProxySettings settings)
{
    public async Task<AccessResult> AuthorizeAsync(HttpContext context, InterceptTarget target, string repository, Digest digest, string? manifestMediaType)
    {
        var registry = target.Authority;
        var key = digest.ToString();
        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        var linked = cache.Index.IsLinked(registry, repository, key);
        var visibility = cache.Index.FindRepository(registry, repository);
        var isPublic = linked && visibility?.Public == true;
        var publicIsFresh = isPublic && (settings.ManifestPolicy == ManifestPolicy.Offline || visibility!.UpdatedAt > cache.Now - settings.ManifestTtl);
        if (linked && (publicIsFresh || grants.IsGranted(authorization, registry, repository) || LocalTokenAllows(context, registry, repository)))
        {
            return new(AccessDecision.Allowed);
        }

        // Ask upstream, with the client's own credentials, whether this client may read it.
        var kind = manifestMediaType is null ? "blobs" : "manifests";
        using var probe = upstream.CreateRequest(HttpMethod.Head, target, $"/v2/{repository}/{kind}/{key}", context.Request, manifestMediaType);
        HttpResponseMessage response;
        try
        {
            response = await upstream.SendAsync(probe, followRedirects: false, upstream.Timeout, context.RequestAborted);
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            return new(isPublic ? AccessDecision.Allowed : AccessDecision.Unavailable);
        }

        var status = (int)response.StatusCode;
        if (status is >= 200 and < 400)
        {
            response.Dispose();
            cache.Index.Link(registry, repository, key, cache.Now);
            grants.RecordSuccess(authorization, registry, repository);
            return new(AccessDecision.Allowed);
        }

        if (RegistryUpstream.IsUpstreamFault(response.StatusCode))
        {
            response.Dispose();
            return new(isPublic ? AccessDecision.Allowed : AccessDecision.Unavailable);
        }

        if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
        {
            grants.RecordRefusal(authorization, registry, repository);
            challenges.LearnFromRefusal(registry, response);
        }

        return new(AccessDecision.Refused, response);
    }

    /// <summary>
    /// Offline variant for stale serving: no upstream to ask, so only public repositories, a
    /// credential with a live grant, or a proxy-local token minted for such a credential pass.
    /// </summary>
    public bool AuthorizeOffline(HttpContext context, InterceptTarget target, string repository, Digest digest)
    {
        var registry = target.Authority;
        if (!cache.Index.IsLinked(registry, repository, digest.ToString()))
        {
            return false;
        }

        if (cache.Index.IsPublic(registry, repository) == true)
        {
            return true;
        }

        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        return (!tokens.IsAnonymous(authorization) && grants.IsGranted(authorization, registry, repository))
            || LocalTokenAllows(context, registry, repository);
    }

    /// <summary>A proxy-local token for a credential that still holds a grant for this repository.</summary>
    private bool LocalTokenAllows(HttpContext context, string registry, string repository) =>
        tokens.FindLocal(context.Request.Headers.Authorization) is { CredentialKey: { } credential } local
        && local.AllowsPull(repository)
        && grants.IsLive(credential, registry, repository);
}
