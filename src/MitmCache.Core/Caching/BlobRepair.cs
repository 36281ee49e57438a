using Microsoft.Extensions.Logging;
using MitmCache.Diagnostics;
using MitmCache.Registry;
using MitmCache.Upstream;

namespace MitmCache.Caching;

/// <summary>
/// Start-up repair (no temp files, no index entries without files, no files without entries) and the check it shares
/// with <c>cache verify</c> (<see cref="CacheAdmin.Verify"/>): re-hash a stored file against its digest.
/// </summary>
internal static class BlobRepair
{
    /// <summary>
    /// One pass over the index and one over the files (1M entries: a few seconds, no per-file lookups). Sets the
    /// cache's size to what is left.
    /// </summary>
    public static void Reconcile(BlobStore store, BlobRecords blobs, CacheSize size, ILogger logger)
    {
        var swept = store.SweepTemp();
        var dropped = 0;
        var indexed = new HashSet<string>(StringComparer.Ordinal);
        long total = 0;
        foreach (var record in blobs.AllBlobs())
        {
            if (!Digest.TryParse(record.Id, out var digest))
            {
                blobs.DeleteUnparsable(record);
                dropped++;
                continue;
            }

            var file = new FileInfo(store.PathOf(digest));
            if (!file.Exists || file.Length != record.Size)
            {
                store.Delete(digest);
                blobs.DeleteBlob(digest);
                dropped++;
                continue;
            }

            indexed.Add(record.Id);
            total += record.Size;
        }

        size.Reset(total);

        int adopted = 0, removed = 0;
        foreach (var (digest, path) in store.EnumerateBlobs())
        {
            if (indexed.Contains(digest.ToString()))
            {
                continue;
            }

            // A file without an entry: a crash between rename and index. Keep it only if it verifies.
            if (VerifyFile(digest, path, out var length, out var mediaType))
            {
                size.Add(digest, length, mediaType);
                adopted++;
            }
            else
            {
                try
                {
                    File.Delete(path);
                    removed++;
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                }
            }
        }

        logger.Reconciled(swept, dropped, adopted, removed, indexed.Count + adopted, size.TotalBytes);
    }

    /// <summary>Re-hashes a stored file; also sniffs a manifest's media type from its JSON.</summary>
    public static bool VerifyFile(Digest digest, string path, out long size, out string mediaType)
    {
        size = 0;
        mediaType = "application/octet-stream";
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, StreamCopier.BufferSize, FileOptions.SequentialScan);
            using var hash = digest.CreateHash();
            var copy = StreamCopier.Copy(stream, new HashingSink(hash));
            size = copy.Bytes;
            if (copy.Failure != CopyFailure.None || !digest.Matches(hash.GetHashAndReset()))
            {
                return false;
            }

            if (size < ManifestSniffer.MaxBytes)
            {
                mediaType = ManifestSniffer.MediaTypeOf(File.ReadAllBytes(path)) ?? mediaType;
            }

            return true;
        }
        catch (IOException)
        {
            return false;
        }
    }
}
