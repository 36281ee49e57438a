using MitmCache.Caching;

namespace MitmCache.Cli;

/// <summary>
/// The cache operations as the CLI reaches them: <see cref="AdminApiClient"/> asks the running proxy
/// (which owns the LiteDB index), <see cref="DataDirectoryCache"/> opens the data directory of a stopped
/// one. Both end in the same <see cref="CacheAdmin"/>.
/// </summary>
internal interface ICacheOperations : IDisposable
{
    /// <summary>"the proxy at URL" or "the data directory DIR", for messages.</summary>
    string Source { get; }

    Task<CacheStats> StatsAsync(int top, CancellationToken cancellationToken);

    Task<IReadOnlyList<CacheEntry>> ListAsync(string? registry, string? repository, CancellationToken cancellationToken);

    Task<PruneReport> PruneAsync(TimeSpan? olderThan, long? maxBytes, bool dryRun, CancellationToken cancellationToken);

    Task<VerifyReport> VerifyAsync(bool delete, CancellationToken cancellationToken);

    /// <summary>Drops every credential's grants for a registry (or one repository); returns how many.</summary>
    Task<int> RevokeAsync(string registry, string? repository, CancellationToken cancellationToken);
}
