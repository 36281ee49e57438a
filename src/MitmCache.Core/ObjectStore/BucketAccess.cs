using Microsoft.AspNetCore.Http;
using MitmCache.Registry;
using MitmCache.Tunneling;

namespace MitmCache.ObjectStore;

/// <summary>
/// Whether one request may be served the bucket's copy of a digest. The bucket holds every private layer and proves
/// nothing about who may read it, so its copy is served under exactly the rules of a local copy
/// (<see cref="RegistryAuthorizer"/>): linked here and this client may read the repository; or upstream confirms it for
/// this client (a HEAD with its own credentials), which counts only where the digest's bytes are known to be in this
/// repository or public already (linked here, linked to a public repository here, or a <see cref="PublicLink"/> of this
/// repository in the bucket), because a HEAD costs nothing to forge and a hostile registry could otherwise claim another
/// registry's private layer; or, upstream down, what a local copy would get offline. One more offline answer exists only
/// through the bucket: a public link another parent recorded (the bytes came through this repository, served without
/// credentials), unless this instance has learned since that the repository is not public. Everything needed of the
/// client's request is taken when the request makes this (<see cref="Capture"/>), because the fill that asks may outlive
/// the request.
/// </summary>
internal sealed class BucketAccess : IDisposable
{
    private readonly bool _allowedHere;
    private readonly bool _bytesKnownHere;
    private readonly bool _allowedOffline;
    private readonly DateTime? _knownPrivateSince;
    private readonly RegistryAuthorizer.PreparedProbe? _probe;
    private readonly string _registry;
    private readonly string _repository;

    private BucketAccess(bool allowedHere, bool bytesKnownHere, bool allowedOffline, DateTime? knownPrivateSince, RegistryAuthorizer.PreparedProbe? probe,
        string registry, string repository)
    {
        _allowedHere = allowedHere;
        _bytesKnownHere = bytesKnownHere;
        _allowedOffline = allowedOffline;
        _knownPrivateSince = knownPrivateSince;
        _probe = probe;
        _registry = registry;
        _repository = repository;
    }

    /// <summary>Takes what the decision needs from the live request; no I/O.</summary>
    /// <param name="probe">False when upstream is known to have failed this request already (then only the offline rules apply).</param>
    /// <param name="linked">The digest is linked to this repository here.</param>
    public static BucketAccess Capture(RegistryAuthorizer authorizer, RepositoryVisibility visibility, HttpContext context, InterceptTarget target,
        string repository, Digest digest, bool probe = true, bool linked = false)
    {
        var allowedHere = authorizer.IsAllowed(context, target, repository, digest);
        var local = visibility.FindRepository(target.Authority, repository);
        return new BucketAccess(allowedHere, linked || authorizer.IsPublicAnywhere(digest), authorizer.AuthorizeOffline(context, target, repository, digest),
            local is { Public: false } ? local.UpdatedAt : null,
            allowedHere || !probe ? null : authorizer.Prepare(context, target, repository, digest), target.Authority, repository);
    }

    /// <summary>Whether the bucket's copy of <paramref name="digest"/> (of <paramref name="size"/> bytes) may be served to the request, and why.</summary>
    public async Task<(bool Allowed, string Reason)> DecideAsync(S3BlobTier tier, Digest digest, long size, CancellationToken ct)
    {
        if (_allowedHere)
        {
            return (true, "linked here, and this client may read the repository");
        }

        if (_probe is null)
        {
            return await DecideOfflineAsync(tier, digest, "upstream failed this request", ct);
        }

        var shared = _bytesKnownHere ? null : await SharedPublicLinkAsync(tier, digest, ct);
        if (!_bytesKnownHere && shared is null)
        {
            // As for a local copy: upstream's word about a digest counts only where its bytes are known to be here or public.
            return (false, "its bytes are not known to be in this repository: fetched through it, as any miss");
        }

        using var probe = await _probe.RunAsync(size, ct);
        switch (probe.Outcome)
        {
            case ProbeOutcome.Confirmed:
                return (true, "upstream confirmed it for this client");
            case ProbeOutcome.NotConfirmed:
                return (false, "upstream did not confirm it for this client");
        }

        return await DecideOfflineAsync(tier, digest, $"upstream unavailable ({probe.Reason})", ct, shared);
    }

    /// <summary>Upstream cannot be asked: what a local copy would get offline, or a public link another parent recorded.</summary>
    private async Task<(bool Allowed, string Reason)> DecideOfflineAsync(S3BlobTier tier, Digest digest, string why, CancellationToken ct, PublicLink? shared = null)
    {
        if (_allowedOffline)
        {
            return (true, $"{why}; linked here, and this client may read the repository offline");
        }

        return (shared ?? await SharedPublicLinkAsync(tier, digest, ct)) is not null
            ? (true, $"{why}; a public link in the blob store")
            : (false, $"{why}, and nothing lets this client read it offline");
    }

    /// <summary>Another parent's public link of the digest to this repository, unless this instance has learned since that the repository is not public.</summary>
    private async Task<PublicLink?> SharedPublicLinkAsync(S3BlobTier tier, Digest digest, CancellationToken ct) =>
        (await tier.GetPublicLinkAsync(_registry, _repository, digest, ct)).Value is { } link
            && (_knownPrivateSince is not { } since || since < link.LinkedAt.UtcDateTime)
            ? link
            : null;

    public void Dispose() => _probe?.Dispose();
}
