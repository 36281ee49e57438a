using System.Runtime.ExceptionServices;
using LiteDB;
using Microsoft.Extensions.Logging;
using MitmCache.Configuration;
using MitmCache.Diagnostics;

namespace MitmCache.Caching;

/// <summary>
/// The LiteDB file of the index (<c>index.db</c>), open once per process (direct mode is thread-safe) and
/// shared by the stores, each of which owns one collection (<see cref="IndexSchema"/>): the cache's
/// <see cref="BlobRecords"/>, <see cref="LinkRecords"/>, <see cref="TagRecords"/> and upload queue, and the
/// registry's grants, repository visibility and challenges. This type only keeps the file usable.
/// </summary>
/// <remarks>
/// LiteDB closes its engine for good after an I/O error (a full disk) or a damaged page, and every
/// later call throws the same error. The proxy must not stay broken after space returns, so an
/// operation that meets a dead engine retires it, and the next one reopens the file (at most once per
/// <see cref="ReopenInterval"/>); LiteDB's log keeps every committed transaction across the reopen.
/// Operations hold a read lock and closing or retiring takes the write lock, so no transaction is ever
/// cut off by a dispose on another thread. Queries return lists: a lazy LiteDB enumerator owns a
/// transaction on the thread that started it and must not outlive the lock.
/// </remarks>
internal sealed class IndexDatabase : IDisposable
{
    /// <summary>The shortest time between two attempts to reopen a failed index.</summary>
    public static readonly TimeSpan ReopenInterval = TimeSpan.FromSeconds(1);

    private readonly ConnectionString _connection;
    private readonly FileStream? _lock;
    private readonly TimeProvider _time;
    private readonly BsonMapper _mapper = new();
    private readonly ReaderWriterLockSlim _gate = new(LockRecursionPolicy.NoRecursion);
    private LiteDatabase? _database;
    private Action<LiteDatabase>? _closing;
    private (ExceptionDispatchInfo Error, long At)? _reopenFailure;
    private bool _disposed;

    /// <param name="time">The clock of <see cref="ReopenInterval"/>; the system's by default.</param>
    /// <exception cref="CacheLockedException">Another process has this index open.</exception>
    public IndexDatabase(string path, TimeProvider? time = null)
        : this(new ConnectionString { Filename = path, Connection = ConnectionType.Direct }, Lock(DataLayout.LockOf(path)), time ?? TimeProvider.System, unavailable: null)
    {
    }

    private IndexDatabase(ConnectionString connection, FileStream? fileLock, TimeProvider time, string? unavailable)
    {
        _connection = connection;
        _lock = fileLock;
        _time = time;
        Unavailable = unavailable;

        // LiteDB's mapper publishes a type's mapping before it fills it in, so a second thread can find a member
        // missing ("Member LastAccess not found"): every document type is mapped here, before the stores share it.
        foreach (var (_, type) in IndexSchema.Documents)
        {
            _ = _mapper.ToDocument(type, Activator.CreateInstance(type)!);
        }

        try
        {
            _database = Connect();
        }
        catch
        {
            _lock?.Dispose(); // an unreadable file: let OpenOrRebuild move it aside and take the lock again
            throw;
        }
    }

    /// <summary>How many times the index was reopened after its engine failed.</summary>
    public int Reopens { get; private set; }

    /// <summary>Why the data directory's index could not be opened, for an index kept in memory instead; else null.</summary>
    public string? Unavailable { get; }

    /// <summary>Raised when a bookkeeping write could not be stored (see <see cref="TryWrite"/>).</summary>
    public event Action<Exception>? WriteFailed;

    /// <summary>An index that lives in memory only: the pass-through mode for an unusable data directory.</summary>
    public static IndexDatabase InMemory(string? unavailable = null) =>
        new(new ConnectionString { Filename = ":memory:" }, fileLock: null, TimeProvider.System, unavailable);

    /// <summary>
    /// The proxy's index: <see cref="OpenOrRebuild"/> in the data directory, or, when the directory cannot be
    /// used and <c>--on-cache-failure passthrough</c> was given, one in memory (<see cref="Unavailable"/> says why).
    /// </summary>
    /// <exception cref="CacheUnavailableException">The directory cannot be used, and pass-through was not asked for.</exception>
    /// <exception cref="CacheLockedException">Another process has the index open.</exception>
    public static IndexDatabase Open(ProxySettings settings, TimeProvider time, ILogger logger)
    {
        try
        {
            var index = OpenOrRebuild(settings.Layout.Index, time, out var movedAside);
            if (movedAside is not null)
            {
                logger.IndexRebuilt(movedAside);
            }

            return index;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException && settings.OnCacheFailure == CacheFailureMode.Passthrough)
        {
            // A read-only or broken data directory: keep proxying, cache nothing new.
            logger.CacheUnavailable(settings.DataDirectory, ex.Message);
            return InMemory(ex.Message);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw CacheUnavailableException.For(settings.DataDirectory, ex);
        }
    }

    /// <summary>
    /// Opens the index and reads every document once. A file LiteDB cannot read (torn, scribbled,
    /// not a database) is moved aside with its log and a new, empty index is created; the caller
    /// rebuilds it from the blob files. Returns the path the broken file was moved to, or null.
    /// Permission and locking errors are not corruption and are thrown.
    /// </summary>
    public static IndexDatabase OpenOrRebuild(string path, TimeProvider time, out string? movedAside)
    {
        movedAside = null;
        try
        {
            var index = new IndexDatabase(path, time);
            try
            {
                index.Validate();
                return index;
            }
            catch
            {
                index.Dispose(flush: false);
                throw;
            }
        }
        catch (Exception ex) when (IsCorruption(ex))
        {
            movedAside = DataLayout.CorruptCopyOf(path, time.GetUtcNow());
            File.Move(path, movedAside, overwrite: true);
            var log = DataLayout.LogOf(path);
            if (File.Exists(log))
            {
                File.Move(log, movedAside + "-log", overwrite: true);
            }

            return new IndexDatabase(path, time);
        }
    }

    private static bool IsCorruption(Exception ex) =>
        ex is LiteException or ArgumentException or InvalidOperationException or IndexOutOfRangeException
            or InvalidCastException or FormatException or OverflowException or NullReferenceException
            or InvalidDataException or EndOfStreamException;

    /// <summary>
    /// What LiteDB throws once its engine has closed itself (see the remarks): a write says so, a query meets the
    /// engine's disposed locks (<see cref="ObjectDisposedException"/>).
    /// </summary>
    private static bool IsEngineFailure(Exception ex) =>
        ex is IOException or ObjectDisposedException or LiteException { ErrorCode: LiteException.ENGINE_DISPOSED or InvalidDatafileState };

    // LiteDB's code for a failed internal consistency check (ENSURE), after which the engine is closed.
    private const int InvalidDatafileState = 999;

    /// <summary>What a failed index call throws when storage, not the caller, is at fault.</summary>
    public static bool IsStorageFailure(Exception ex) => IsEngineFailure(ex);

    /// <summary>Every document of every collection, read as the type it is stored as.</summary>
    private void Validate() => Use(database =>
    {
        foreach (var (name, type) in IndexSchema.Documents)
        {
            foreach (var document in database.GetCollection(name).FindAll())
            {
                _ = _mapper.ToObject(type, document);
            }
        }

        return 0;
    });

    /// <summary>A store's collection, with the indexes <paramref name="prepare"/> ensures on each opening of the file.</summary>
    public IndexCollection<T> Collection<T>(string name, Action<ILiteCollection<T>>? prepare = null) => new(this, name, prepare);

    /// <summary>
    /// Runs <paramref name="flush"/> on the open database as the index closes, after every operation in flight
    /// (pending writes kept in memory; it must not call back into this index).
    /// </summary>
    public void BeforeClose(Action<LiteDatabase> flush) => _closing += flush;

    /// <summary>Throws when the index cannot be read. One key lookup, whatever the index holds (for /readyz).</summary>
    public void Probe() => Use(database => database.GetCollection(IndexSchema.Blobs).FindById("probe"));

    /// <summary>Writes LiteDB's log into the data file and empties it (LiteDB does so by itself only past 1000 pages).</summary>
    public void Checkpoint() => Use(database =>
    {
        database.Checkpoint();
        return 0;
    });

    /// <summary>
    /// Runs a bookkeeping write, written while a request is served: a storage failure (a full disk) returns false
    /// and raises <see cref="WriteFailed"/> instead of failing the request. A lost write only makes a later answer
    /// stricter (not linked, private, no grant) or turns a later hit into a miss; callers that must not lose one
    /// check the result.
    /// </summary>
    public bool TryWrite(Action<LiteDatabase> write)
    {
        try
        {
            Use(database =>
            {
                write(database);
                return 0;
            });
            return true;
        }
        catch (Exception ex) when (IsEngineFailure(ex))
        {
            WriteFailed?.Invoke(ex);
            return false;
        }
    }

    /// <summary>Runs one operation on the open database, reopening it first if a failure retired it.</summary>
    public T Use<T>(Func<LiteDatabase, T> operation)
    {
        while (true)
        {
            LiteDatabase? failed = null;
            ExceptionDispatchInfo? failure = null;
            _gate.EnterReadLock();
            try
            {
                ObjectDisposedException.ThrowIf(_disposed, this);
                if (_database is { } database)
                {
                    try
                    {
                        return operation(database);
                    }
                    catch (Exception ex) when (IsEngineFailure(ex))
                    {
                        failed = database;
                        failure = ExceptionDispatchInfo.Capture(ex);
                    }
                }
            }
            finally
            {
                _gate.ExitReadLock();
            }

            if (failure is not null)
            {
                Retire(failed!);
                failure.Throw();
            }

            Reopen();
        }
    }

    private LiteDatabase Connect() => new(_connection, _mapper)
    {
        UtcDate = true, // times come back as UTC, as they are compared with the UTC clock
    };

    private void Retire(LiteDatabase failed)
    {
        _gate.EnterWriteLock();
        try
        {
            if (ReferenceEquals(_database, failed))
            {
                _database = null;
                Close(failed);
            }
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    private void Reopen()
    {
        _gate.EnterWriteLock();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_database is not null)
            {
                return;
            }

            if (_reopenFailure is { } last && _time.GetElapsedTime(last.At) < ReopenInterval)
            {
                last.Error.Throw();
            }

            try
            {
                _database = Connect();
                _reopenFailure = null;
                Reopens++;
            }
            catch (Exception ex) when (IsEngineFailure(ex) || IsCorruption(ex))
            {
                _reopenFailure = (ExceptionDispatchInfo.Capture(ex), _time.GetTimestamp());
                throw;
            }
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }

    private static void Close(LiteDatabase database)
    {
        database.Dispose();
        LiteDbTransactions.SuppressFinalizers(database);
    }

    /// <summary>
    /// LiteDB's direct mode assumes one process per file but does not enforce it on Linux (its FileShare
    /// becomes a shared advisory lock), so a second proxy, or <c>mitmcache cache</c> on the data directory
    /// of a running one, would write the same file. An exclusive lock on a side file makes it fail instead;
    /// the kernel drops the lock when the process dies, so a crash leaves nothing to clean up.
    /// </summary>
    private static FileStream Lock(string path)
    {
        try
        {
            return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException ex) when (ex.GetType() == typeof(IOException) && ex.HResult is EWouldBlock or SharingViolation)
        {
            // Other failures (read-only or missing directory, permissions) are not a lock: they go up unchanged.
            throw new CacheLockedException($"the cache index is in use by another process (a running proxy?): {path} is locked", ex);
        }
    }

    // What .NET reports when the lock is held: flock's errno on Linux, ERROR_SHARING_VIOLATION on Windows.
    private const int EWouldBlock = 11;
    private const int SharingViolation = unchecked((int)0x80070020);

    /// <summary>Waits for operations in flight, runs <see cref="BeforeClose"/>, closes the database and releases the lock.</summary>
    public void Dispose() => Dispose(flush: true);

    private void Dispose(bool flush)
    {
        _gate.EnterWriteLock();
        try
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            try
            {
                if (flush && _database is { } database)
                {
                    _closing?.Invoke(database);
                }
            }
            catch (Exception ex) when (IsEngineFailure(ex))
            {
                // What is kept in memory until a flush (access times) are hints; losing the last batch is harmless.
            }
            finally
            {
                if (_database is { } open)
                {
                    Close(open);
                }

                _database = null;
                _lock?.Dispose();
            }
        }
        finally
        {
            _gate.ExitWriteLock();
        }
    }
}
