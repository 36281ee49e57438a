using System.Globalization;

namespace MitmCache.Caching;

internal enum RangeKind
{
    /// <summary>No usable Range header: send the whole body with 200.</summary>
    Full,
    /// <summary>One satisfiable range: 206 with Content-Range.</summary>
    Partial,
    /// <summary>A well-formed range outside the body: 416.</summary>
    Unsatisfiable,
}

/// <summary>A single byte range resolved against a known length (RFC 9110 section 14).</summary>
internal readonly record struct ByteRange(RangeKind Kind, long Start, long Length)
{
    /// <summary>
    /// Resolves <c>bytes=a-b</c>, <c>bytes=a-</c> and <c>bytes=-n</c>. Multiple ranges and syntax errors
    /// are ignored (whole body), as the RFC allows; a start past the end is unsatisfiable.
    /// </summary>
    public static ByteRange Resolve(string? header, long size)
    {
        if (string.IsNullOrWhiteSpace(header) || !header.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase) || header.Contains(',', StringComparison.Ordinal))
        {
            return new(RangeKind.Full, 0, size);
        }

        var spec = header.AsSpan(6).Trim();
        var dash = spec.IndexOf('-');
        if (dash < 0)
        {
            return new(RangeKind.Full, 0, size);
        }

        var first = spec[..dash].Trim();
        var last = spec[(dash + 1)..].Trim();
        if (first.IsEmpty)
        {
            if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var suffix))
            {
                return new(RangeKind.Full, 0, size);
            }

            if (suffix == 0 || size == 0)
            {
                return new(RangeKind.Unsatisfiable, 0, 0);
            }

            var length = Math.Min(suffix, size);
            return new(RangeKind.Partial, size - length, length);
        }

        if (!long.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out var start))
        {
            return new(RangeKind.Full, 0, size);
        }

        long end;
        if (last.IsEmpty)
        {
            end = size - 1;
        }
        else if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out end) || end < start)
        {
            return new(RangeKind.Full, 0, size);
        }

        if (start >= size)
        {
            return new(RangeKind.Unsatisfiable, 0, 0);
        }

        end = Math.Min(end, size - 1);
        return new(RangeKind.Partial, start, end - start + 1);
    }
}
