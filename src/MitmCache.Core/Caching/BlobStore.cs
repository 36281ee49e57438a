using MitmCache.Configuration;
using MitmCache.Registry;

namespace MitmCache.Caching;

/// <summary>
/// Content-addressed files: <c>blobs/sha256/ab/&lt;hex&gt;</c>, with fills written under <c>tmp/</c> and
/// moved in atomically once verified. The paths are <see cref="DataLayout"/>'s; a blob's path is only
/// ever built from a parsed <see cref="Digest"/>.
/// </summary>
internal sealed class BlobStore
{
    private readonly DataLayout _layout;

    /// <summary>Paths only: nothing is created until <see cref="CreateDirectories"/>.</summary>
    public BlobStore(DataLayout layout)
    {
        _layout = layout;
        BlobRoot = layout.Blobs;
        TempRoot = layout.Temp;
    }

    /// <summary>Creates <c>blobs/</c> and <c>tmp/</c> (0700) if missing; fails on a read-only data directory.</summary>
    public void CreateDirectories()
    {
        CreatePrivateDirectory(BlobRoot);
        CreatePrivateDirectory(TempRoot);
    }

    public string BlobRoot { get; }

    public string TempRoot { get; }

    public string PathOf(Digest digest) => _layout.BlobPath(digest);

    public string NewTempPath(Digest digest) => _layout.NewTempPath(digest);

    /// <summary>Moves a verified temp file into place; the rename is atomic on one file system.</summary>
    public void Commit(string tempPath, Digest digest)
    {
        var path = PathOf(digest);
        CreatePrivateDirectory(Path.GetDirectoryName(path)!);
        File.Move(tempPath, path, overwrite: true);
    }

    /// <summary>
    /// Cached layers may be private images: directories the cache creates are owner-only (0700),
    /// so other local users cannot read them whatever the umask.
    /// </summary>
    public static void CreatePrivateDirectory(string path)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(path);
        }
        else if (!Directory.Exists(path))
        {
            Directory.CreateDirectory(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public bool Delete(Digest digest)
    {
        try
        {
            File.Delete(PathOf(digest));
            return true;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>Removes temp files left by a crash. Returns how many were removed.</summary>
    public int SweepTemp()
    {
        var removed = 0;
        foreach (var file in Directory.Exists(TempRoot) ? Directory.EnumerateFiles(TempRoot) : [])
        {
            try
            {
                File.Delete(file);
                removed++;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }

        return removed;
    }

    /// <summary>Every file in the store whose name parses back to a digest; other files are ignored.</summary>
    public IEnumerable<(Digest Digest, string Path)> EnumerateBlobs()
    {
        foreach (var algorithmDirectory in Directory.Exists(BlobRoot) ? Directory.EnumerateDirectories(BlobRoot) : [])
        {
            var algorithm = System.IO.Path.GetFileName(algorithmDirectory);
            foreach (var file in Directory.EnumerateFiles(algorithmDirectory, "*", SearchOption.AllDirectories))
            {
                if (Digest.TryParse($"{algorithm}:{System.IO.Path.GetFileName(file)}", out var digest) && PathOf(digest) == file)
                {
                    yield return (digest, file);
                }
            }
        }
    }
}
