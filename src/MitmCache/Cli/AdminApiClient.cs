using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using MitmCache.Caching;
using MitmCache.Hosting;

namespace MitmCache.Cli;

/// <summary>The cache operations of a running proxy, over its loopback-only <c>/admin/cache/*</c> endpoints.</summary>
internal sealed class AdminApiClient : ICacheOperations
{
    private readonly HttpClient _http;

    private AdminApiClient(Uri proxy)
    {
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = proxy, Timeout = Timeout.InfiniteTimeSpan };
        Source = $"the proxy at {proxy.GetLeftPart(UriPartial.Authority)}";
    }

    public string Source { get; }

    /// <summary>The data directory the proxy serves (full path), as it says.</summary>
    public string DataDirectory { get; private set; } = "";

    /// <summary>A client when a MitmCache proxy answers at <paramref name="proxy"/>; null when nothing listens there.</summary>
    /// <exception cref="CliException">Something answered, but not as a MitmCache proxy that lets this host administer it.</exception>
    public static async Task<AdminApiClient?> ConnectAsync(Uri proxy, CancellationToken cancellationToken)
    {
        var client = new AdminApiClient(proxy);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(3));
        try
        {
            using var response = await client._http.GetAsync("/admin/cache/info", timeout.Token);
            client.DataDirectory = (await client.ReadAsync(response, "/admin/cache/info", AdminJson.Default.AdminInfo, cancellationToken)).DataDirectory;
            return client;
        }
        catch (Exception ex) when (ex is HttpRequestException || (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            client.Dispose();
            return null;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public Task<CacheStats> StatsAsync(int top, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, string.Create(CultureInfo.InvariantCulture, $"/admin/cache/stats?top={top}"), AdminJson.Default.CacheStats, cancellationToken);

    public Task<IReadOnlyList<CacheEntry>> ListAsync(string? registry, string? repository, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Get, $"/admin/cache/entries?registry={Uri.EscapeDataString(registry ?? "")}&repository={Uri.EscapeDataString(repository ?? "")}",
            AdminJson.Default.IReadOnlyListCacheEntry, cancellationToken);

    public Task<PruneReport> PruneAsync(TimeSpan? olderThan, long? maxBytes, bool dryRun, CancellationToken cancellationToken)
    {
        var query = new List<string>();
        if (olderThan is { } age)
        {
            query.Add(string.Create(CultureInfo.InvariantCulture, $"olderThan={(long)age.TotalMilliseconds}ms"));
        }

        if (maxBytes is { } size)
        {
            query.Add(string.Create(CultureInfo.InvariantCulture, $"maxSize={size}"));
        }

        query.Add($"dryRun={(dryRun ? "true" : "false")}");
        return SendAsync(HttpMethod.Post, "/admin/cache/prune?" + string.Join('&', query), AdminJson.Default.PruneReport, cancellationToken);
    }

    public Task<VerifyReport> VerifyAsync(bool delete, CancellationToken cancellationToken) =>
        SendAsync(HttpMethod.Post, $"/admin/cache/verify?delete={(delete ? "true" : "false")}", AdminJson.Default.VerifyReport, cancellationToken);

    public async Task<int> RevokeAsync(string registry, string? repository, CancellationToken cancellationToken) =>
        (await SendAsync(HttpMethod.Post, $"/admin/auth/revoke?registry={Uri.EscapeDataString(registry)}" +
            (repository is null ? "" : $"&repository={Uri.EscapeDataString(repository)}"), AdminJson.Default.RevokeReport, cancellationToken)).Revoked;

    private async Task<T> SendAsync<T>(HttpMethod method, string path, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(method, path);
        request.Headers.Add(AdminEndpoints.RequiredHeader, "1");
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new CliException($"{Source} stopped answering: {ex.Message}");
        }

        using (response)
        {
            return await ReadAsync(response, path, type, cancellationToken);
        }
    }

    private async Task<T> ReadAsync<T>(HttpResponseMessage response, string path, JsonTypeInfo<T> type, CancellationToken cancellationToken)
    {
        string message;
        try
        {
            if (response.IsSuccessStatusCode)
            {
                return await response.Content.ReadFromJsonAsync(type, cancellationToken)
                    ?? throw new CliException($"{Source} sent an empty answer to {path}");
            }

            message = (await response.Content.ReadFromJsonAsync(AdminJson.Default.AdminError, cancellationToken))?.Error ?? "";
        }
        catch (JsonException)
        {
            message = "no admin endpoints: is it a MitmCache proxy of this version?";
        }

        throw new CliException($"{Source} answered {(int)response.StatusCode} {response.ReasonPhrase}: {message}");
    }

    public void Dispose() => _http.Dispose();
}
