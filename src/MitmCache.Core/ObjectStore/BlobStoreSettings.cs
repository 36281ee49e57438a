using System.Text.RegularExpressions;

namespace MitmCache.ObjectStore;

/// <summary>
/// The S3 blob tier, validated: <c>--blob-store s3://BUCKET[/PREFIX]</c>, <c>--s3-endpoint URL</c>,
/// <c>--s3-region</c>. Credentials are not here: they come only from the environment or a credentials
/// file (<see cref="S3Credentials"/>), never from flags, so they never show in <c>ps</c> or a config dump.
/// The tuning values have no flags; their defaults are what the tests and benchmarks ran with.
/// </summary>
internal sealed partial record BlobStoreSettings
{
    public const string BlobStoreOption = "--blob-store";
    public const string EndpointOption = "--s3-endpoint";
    public const string RegionOption = "--s3-region";
    public const string DefaultRegion = "us-east-1";

    public required string Bucket { get; init; }

    /// <summary>Key prefix without leading or trailing slash; empty for the bucket's root.</summary>
    public string Prefix { get; init; } = "";

    /// <summary>Path-style endpoint, e.g. <c>http://127.0.0.1:7480</c> or <c>https://s3.eu-west-1.amazonaws.com</c>.</summary>
    public required Uri Endpoint { get; init; }

    /// <summary>The SigV4 signing region (Ceph and Swift accept any name; AWS needs the bucket's).</summary>
    public string Region { get; init; } = DefaultRegion;

    /// <summary>Connect, and wait for response headers, at most this long; then the breaker opens.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>A body that moves no byte either way for this long has failed (a hung engine).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long the breaker stays open after the first failure; doubled per failed probe up to <see cref="BreakerMaxOpen"/>.</summary>
    public TimeSpan BreakerOpen { get; init; } = TimeSpan.FromSeconds(5);

    public TimeSpan BreakerMaxOpen { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Blobs larger than this are uploaded in parts (one request per part, streamed from disk).</summary>
    public long MultipartThreshold { get; init; } = 64L << 20;

    /// <summary>Part size of a multipart upload (S3 needs at least 5 MiB for every part but the last).</summary>
    public long PartSize { get; init; } = 16L << 20;

    /// <summary>Parts of one multipart upload sent at once (each streams from the file: memory stays a few buffers a part).</summary>
    public int PartsInParallel { get; init; } = 4;

    /// <summary>Uploads waiting at most; more are refused and counted (the blob stays local only).</summary>
    public int UploadQueueCapacity { get; init; } = 10_000;

    /// <summary>First and longest wait before an upload that failed is tried again.</summary>
    public TimeSpan UploadRetryMin { get; init; } = TimeSpan.FromSeconds(1);

    public TimeSpan UploadRetryMax { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary><c>s3://bucket/prefix</c>, for logs and the readiness reason.</summary>
    public string Location => Prefix.Length == 0 ? $"s3://{Bucket}" : $"s3://{Bucket}/{Prefix}";

    /// <summary>
    /// Reads the three options. Returns null when none is set (no tier) or when any is wrong; every
    /// problem is added to <paramref name="errors"/>. Messages never repeat a value that may hold a secret.
    /// </summary>
    public static BlobStoreSettings? Parse(string? blobStore, string? endpoint, string? region, ICollection<string> errors)
    {
        var count = errors.Count;
        if (string.IsNullOrWhiteSpace(blobStore))
        {
            if (!string.IsNullOrWhiteSpace(endpoint))
            {
                errors.Add($"{EndpointOption} needs {BlobStoreOption} s3://BUCKET[/PREFIX]");
            }

            if (!string.IsNullOrWhiteSpace(region))
            {
                errors.Add($"{RegionOption} needs {BlobStoreOption} s3://BUCKET[/PREFIX]");
            }

            return null;
        }

        var (bucket, prefix) = ParseLocation(blobStore.Trim(), errors);
        var uri = ParseEndpoint(endpoint, errors);
        region = string.IsNullOrWhiteSpace(region) ? DefaultRegion : region.Trim();
        if (!RegionName().IsMatch(region))
        {
            errors.Add($"{RegionOption} '{region}' is not a region name (lowercase letters, digits and '-', like us-east-1)");
        }

        if (errors.Count > count || bucket is null || uri is null)
        {
            return null;
        }

        return new BlobStoreSettings { Bucket = bucket, Prefix = prefix, Endpoint = uri, Region = region };
    }

    private static (string? Bucket, string Prefix) ParseLocation(string value, ICollection<string> errors)
    {
        const string scheme = "s3://";
        if (!value.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            errors.Add($"{BlobStoreOption} must look like s3://BUCKET[/PREFIX]");
            return (null, "");
        }

        var rest = value[scheme.Length..];
        var slash = rest.IndexOf('/');
        var bucket = slash < 0 ? rest : rest[..slash];
        var prefix = slash < 0 ? "" : rest[(slash + 1)..].TrimEnd('/');
        var ok = true;
        // The bucket rules every S3 engine accepts (AWS's "general purpose bucket naming rules").
        if (!BucketName().IsMatch(bucket) || bucket.Contains("..", StringComparison.Ordinal) || IpAddressLike().IsMatch(bucket))
        {
            errors.Add($"{BlobStoreOption}: '{bucket}' is not a bucket name (3-63 lowercase letters, digits, '.' and '-', starting and ending with a letter or digit)");
            ok = false;
        }

        // The prefix becomes part of every key: no empty, '.' or '..' segments (a URL would collapse them), no odd characters.
        if (prefix.Length > 0 && (prefix.Length > 256 || prefix.Split('/').Any(s => s is "" or "." or ".." || !PrefixSegment().IsMatch(s))))
        {
            errors.Add($"{BlobStoreOption}: the prefix '{prefix}' must be '/'-separated names of letters, digits, '.', '_' and '-' (at most 256 characters)");
            ok = false;
        }

        return (ok ? bucket : null, prefix);
    }

    private static Uri? ParseEndpoint(string? value, ICollection<string> errors)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add($"{BlobStoreOption} needs {EndpointOption} URL (the S3 endpoint, path-style, e.g. http://127.0.0.1:7480 or https://s3.eu-west-1.amazonaws.com)");
            return null;
        }

        if (!Uri.TryCreate(value.Trim(), UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https") || uri.Host.Length == 0)
        {
            errors.Add($"{EndpointOption} must be an http:// or https:// URL");
            return null;
        }

        if (uri.UserInfo.Length > 0)
        {
            // Never echo it: it may hold a key. Credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a credentials file.
            errors.Add($"{EndpointOption} must not contain credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_SHARED_CREDENTIALS_FILE");
            return null;
        }

        if (uri.AbsolutePath != "/" || uri.Query.Length > 0 || uri.Fragment.Length > 0)
        {
            errors.Add($"{EndpointOption} '{value.Trim()}' must be scheme, host and port only (the bucket goes in {BlobStoreOption})");
            return null;
        }

        return uri;
    }

    [GeneratedRegex(@"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\z", RegexOptions.CultureInvariant)]
    private static partial Regex BucketName();

    [GeneratedRegex(@"^\d+\.\d+\.\d+\.\d+\z", RegexOptions.CultureInvariant)]
    private static partial Regex IpAddressLike();

    [GeneratedRegex(@"^[A-Za-z0-9._-]+\z", RegexOptions.CultureInvariant)]
    private static partial Regex PrefixSegment();

    [GeneratedRegex(@"^[a-z0-9][a-z0-9-]{0,62}\z", RegexOptions.CultureInvariant)]
    private static partial Regex RegionName();
}
