using System.Collections.Concurrent;
using System.Net;
using Microsoft.AspNetCore.Http;
using MitmCache.Caching;
using MitmCache.Configuration;
using MitmCache.Tunneling;
using MitmCache.Upstream;

namespace MitmCache.Registry;

internal enum ProbeOutcome
{
    /// <summary>Upstream's final answer is a 200 for exactly this blob: this client may read it here.</summary>
    Confirmed,
    /// <summary>Upstream answered, but not with that 200 (a refusal, a 404, a blob of another size or digest).</summary>
    NotConfirmed,
    /// <summary>Upstream is at fault (5xx, 429): ask again as a miss, or serve what needs no proof.</summary>
    Fault,
    /// <summary>No answer: connection, TLS, timeout, or a redirect the proxy would not follow.</summary>
    Unreachable,
}

/// <summary>What a probe learned; <see cref="Response"/> is upstream's answer (not for Confirmed or Unreachable), the caller's to dispose.</summary>
internal sealed record ProbeResult(ProbeOutcome Outcome, HttpResponseMessage? Response = null, string Reason = "") : IDisposable
{
    public void Dispose() => Response?.Dispose();
}

/// <summary>
/// Decides whether a cached digest may be served to this client under this repository path.
/// <para>A digest is only ever served under a repository it is linked to, and a link is made from bytes:
/// when upstream sent that blob or manifest through that very repository and it matched its digest. Headers
/// cost nothing to forge, so an upstream answer about a digest (a HEAD, a redirect, a length) links it
/// only where its bytes are public already (linked to a public repository); a registry that claims a
/// private digest it never sent cannot read it out of the cache.</para>
/// <para>On a linked repository, a client may read what upstream authorizes it for: the repository is
/// public, or the client's credential holds a grant, or a proxy-local token minted for such a credential
/// for this registry; otherwise a HEAD with the client's own credentials asks upstream, and only a final
/// 200 for that blob (redirects followed, a 3xx is never proof) says yes. Without upstream, it fails closed.</para>
/// <para>"Public" is a cached answer like a tag: online, it is re-proven with upstream once it is older than
/// the manifest TTL, so a repository made private upstream stops being served to everyone; offline, it stands.</para>
/// </summary>
internal sealed class RegistryAuthorizer(BlobCache cache, AccessGrants grants, RegistryUpstream upstream, AccessTokens tokens, RegistryChallenges challenges, ProxySettings settings,
    LinkRecords links, RepositoryVisibility repositories)
{
    /// <summary>Probes in flight, by the question they answer (the credential by its grant key, never itself).</summary>
    private readonly ConcurrentDictionary<ProbeKey, Task<ProbeAnswer>> _probes = new();

    /// <summary>Linked here, and this client may read it without asking upstream.</summary>
    public bool IsAllowed(HttpContext context, InterceptTarget target, string repository, Digest digest) =>
        links.IsLinked(target.Authority, repository, digest) && IsAuthorized(context, target, repository);

    /// <summary>
    /// The digest is linked to a repository known to be public: its bytes are anyone's already, so an upstream
    /// answer about it (a probe) may link it to another repository too, saving a download. A digest known only
    /// in private repositories is linked nowhere else but by its bytes.
    /// </summary>
    public bool IsPublicAnywhere(Digest digest) =>
        links.LinksOf(digest).Any(link => repositories.IsPublic(link.Registry, link.Repository) == true);

    /// <summary>This client may read this repository without asking upstream: fresh-public, a live grant, or a local token.</summary>
    public bool IsAuthorized(HttpContext context, InterceptTarget target, string repository)
    {
        var registry = target.Authority;
        var visibility = repositories.FindRepository(registry, repository);
        var publicIsFresh = visibility?.Public == true
            && (settings.ManifestPolicy == ManifestPolicy.Offline || visibility.UpdatedAt > cache.Now - settings.ManifestTtl);
        return publicIsFresh
            || grants.IsGranted(upstream.UpstreamAuthorization(target, context.Request), registry, repository)
            || LocalTokenAllows(context, registry, repository);
    }

    /// <summary>
    /// This client as a reader of a fill of <paramref name="digest"/> in <paramref name="repository"/>: who it is (the
    /// key of its credential; empty without one or with an anonymous token), whether it may read the repository
    /// already, and how upstream is asked otherwise (a probe, coalesced per credential; see <see cref="FillReader"/>).
    /// </summary>
    public FillReader Reader(HttpContext context, InterceptTarget target, string repository, Digest digest)
    {
        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        var principal = tokens.IsAnonymous(authorization) ? "" : grants.KeyOf(authorization!);
        return new FillReader($"{target.Authority}/{repository}", principal, IsAuthorized(context, target, repository), async (size, cancellationToken) =>
        {
            using var probe = await Prepare(context, target, repository, digest).RunAsync(size, cancellationToken);
            return probe.Outcome == ProbeOutcome.Confirmed;
        });
    }

    /// <summary>
    /// Asks upstream, with the client's own credentials, whether this client may read <paramref name="digest"/>
    /// in <paramref name="repository"/>: a blob HEAD whose redirects are followed (under the redirect rules) to
    /// the final answer. A yes is remembered as a grant (or, for a client without credentials, as the
    /// repository being public); a 401/403 drops the credential's grant.
    /// <para>One question, one HEAD: clients asking the same (registry, repository, digest, size) with the same
    /// credential while a probe is in flight wait for its answer, each getting its own copy. The probe belongs to
    /// none of them: a client that leaves stops waiting, the others still get the answer. With the registry
    /// down (<see cref="UpstreamHealth"/>), the answer is Unreachable at once.</para>
    /// </summary>
    /// <param name="size">The blob's size, which a yes must announce; null when not known yet.</param>
    public Task<ProbeResult> ProbeAsync(HttpContext context, InterceptTarget target, string repository, Digest digest, long? size) =>
        Prepare(context, target, repository, digest).RunAsync(size, context.RequestAborted);

    /// <summary>
    /// The probe <see cref="ProbeAsync"/> would send, with everything it needs of the client's request taken now: for a
    /// question asked later, by work that may outlive the request (a fill asking whether the bucket's copy may be served).
    /// </summary>
    public PreparedProbe Prepare(HttpContext context, InterceptTarget target, string repository, Digest digest)
    {
        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        var credentialKey = authorization is null ? "" : grants.KeyOf(authorization);
        var request = upstream.CreateRequest(HttpMethod.Head, target, $"/v2/{repository}/blobs/{digest}", context.Request);
        return new PreparedProbe(this, target.Authority, repository, digest, credentialKey, authorization, request);
    }

    /// <summary>A probe ready to run once; see <see cref="Prepare"/>. Disposing it unsent drops its request.</summary>
    internal sealed class PreparedProbe(RegistryAuthorizer owner, string registry, string repository, Digest digest, string credentialKey,
        string? authorization, HttpRequestMessage request) : IDisposable
    {
        private HttpRequestMessage? _request = request;

        public async Task<ProbeResult> RunAsync(long? size, CancellationToken cancellationToken)
        {
            var key = new ProbeKey(registry, repository, digest, size, credentialKey);
            var mine = new TaskCompletionSource<ProbeAnswer>(TaskCreationOptions.RunContinuationsAsynchronously);
            var shared = owner._probes.GetOrAdd(key, mine.Task);
            if (shared == mine.Task)
            {
                var probe = Interlocked.Exchange(ref _request, null) ?? throw new InvalidOperationException("a prepared probe runs once");
                _ = owner.RunProbeAsync(key, mine, probe, authorization);
            }
            else
            {
                Dispose();
            }

            return (await shared.WaitAsync(cancellationToken)).ToResult();
        }

        public void Dispose() => Interlocked.Exchange(ref _request, null)?.Dispose();
    }

    private async Task RunProbeAsync(ProbeKey key, TaskCompletionSource<ProbeAnswer> answer, HttpRequestMessage probe, string? authorization)
    {
        try
        {
            answer.SetResult(await AskAsync(key, probe, authorization));
        }
        catch (Exception ex)
        {
            answer.SetException(ex);
        }
        finally
        {
            probe.Dispose();
            _probes.TryRemove(new KeyValuePair<ProbeKey, Task<ProbeAnswer>>(key, answer.Task));
        }
    }

    private async Task<ProbeAnswer> AskAsync(ProbeKey key, HttpRequestMessage probe, string? authorization)
    {
        HttpResponseMessage response;
        try
        {
            response = await upstream.SendAsync(probe, followRedirects: true, upstream.Timeout, CancellationToken.None);
        }
        catch (Exception ex) when (RegistryUpstream.IsUnreachable(ex))
        {
            return new(ProbeOutcome.Unreachable, HttpForwarder.Describe(ex).Reason);
        }

        using (response)
        {
            if (Confirms(response, key.Registry, key.Digest, key.Size))
            {
                grants.RecordSuccess(authorization, key.Registry, key.Repository);
                return new(ProbeOutcome.Confirmed);
            }

            if (response.StatusCode is HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden)
            {
                grants.RecordRefusal(authorization, key.Registry, key.Repository);
                challenges.LearnFromRefusal(key.Registry, response);
            }

            return RegistryUpstream.IsUpstreamFault(response.StatusCode)
                ? new(ProbeOutcome.Fault, $"answered {(int)response.StatusCode}", ProbeAnswer.HeadOf(response))
                : new(ProbeOutcome.NotConfirmed, "", ProbeAnswer.HeadOf(response));
        }
    }

    /// <summary>
    /// A final 200 about exactly this blob: its length (when known) and, when it names one, its digest. Only a
    /// storage host a redirect led to (a CDN, a signed URL) may leave the digest out; the registry itself may not.
    /// </summary>
    internal static bool Confirms(HttpResponseMessage response, string registry, Digest digest, long? size)
    {
        if (response.StatusCode != HttpStatusCode.OK || (size is { } length && response.Content.Headers.ContentLength != length))
        {
            return false;
        }

        if (response.Headers.TryGetValues("Docker-Content-Digest", out var values))
        {
            return Digest.TryParse(values.FirstOrDefault(), out var announced) && announced == digest;
        }

        var answeredBy = response.RequestMessage?.RequestUri?.Authority;
        return answeredBy is not null && !answeredBy.Equals(registry, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// Without upstream: only what is linked here, to a public repository, a credential with a live grant,
    /// or a proxy-local token minted for such a credential.
    /// </summary>
    public bool AuthorizeOffline(HttpContext context, InterceptTarget target, string repository, Digest digest) =>
        links.IsLinked(target.Authority, repository, digest) && MayReadOffline(context, target, repository);

    /// <summary>
    /// Without upstream, whether this client may read this repository at all: it is public, or the credential
    /// holds a live grant, or a local token minted for such a credential. Says nothing about what is cached.
    /// </summary>
    public bool MayReadOffline(HttpContext context, InterceptTarget target, string repository)
    {
        var registry = target.Authority;
        if (repositories.IsPublic(registry, repository) == true)
        {
            return true;
        }

        var authorization = upstream.UpstreamAuthorization(target, context.Request);
        return (!tokens.IsAnonymous(authorization) && grants.IsGranted(authorization, registry, repository))
            || LocalTokenAllows(context, registry, repository);
    }

    private readonly record struct ProbeKey(string Registry, string Repository, Digest Digest, long? Size, string CredentialKey);

    /// <summary>A proxy-local token minted for this registry, for a credential that still holds a grant for this repository.</summary>
    private bool LocalTokenAllows(HttpContext context, string registry, string repository) =>
        tokens.FindLocal(context.Request.Headers.Authorization) is { CredentialKey: { } credential } local
        && local.IsFor(registry)
        && local.AllowsPull(repository)
        && grants.IsLive(credential, registry, repository);
}
