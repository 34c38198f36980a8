// SPDX-License-Identifier: MIT
pragma solidity ^0.8.28;

import {BLS12381} from "./BLS12381.sol";
import {OperatorRegistry} from "./OperatorRegistry.sol";

/// @title AttestationCenter
/// @notice Records the network's decision on each task attempt, proven by one aggregate
///         BLS signature of operators holding enough stake.
///
///         A submission names the task attempt, the performer's claimed result (signed by
///         the performer's operator key, EIP-712), the decision (approve or reject), the
///         ids of the operators who signed it (strictly increasing: no duplicates) and
///         their aggregate signature over the vote message
///             keccak256(abi.encode(VOTE_TAG, chainId, this, taskId, resultHash, approve)).
///         With T the total active stake and S the signers' stake, an approval needs
///         3·S ≥ 2·T and a rejection 3·S ≥ T (consensus/quorum.py states the same rule).
///         A task is approved at most once; each attempt is decided at most once.
/// @dev Task state is packed 8 bits per task (bit 0: approved, bit a: attempt a decided),
///      32 tasks per storage word, so sequential task ids share slots. Reward counters are
///      packed 8 × uint32 per word by operator id.
contract AttestationCenter {
    struct TaskInfo {
        uint256 taskId;
        uint256 jobId;
        uint32 attempt;
        uint8 performerId;
        bytes32 resultHash;
    }

    bytes public constant SIGNATURE_DST = "BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_";
    bytes32 public constant VOTE_TAG = keccak256("TriggerX.AttestationVote.v1");
    bytes32 public constant TASK_RESULT_TYPEHASH = keccak256(
        "TaskResult(uint256 taskId,uint256 jobId,uint32 attempt,uint8 performerId,bytes32 resultHash)"
    );
    bytes32 private constant _DOMAIN_TYPEHASH = keccak256(
        "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    );
    string public constant NAME = "TriggerX AttestationCenter";
    string public constant VERSION = "1";
    uint32 public constant MAX_ATTEMPT = 7;

    OperatorRegistry public immutable registry;
    mapping(uint256 => uint256) private _taskFlags;
    mapping(uint256 => uint256) private _attested;
    mapping(uint256 => uint256) private _executed;
    mapping(uint256 => uint256) private _rejected;

    event TaskSubmitted(
        uint256 indexed taskId,
        uint256 indexed jobId,
        uint8 indexed performerId,
        uint32 attempt,
        bytes32 resultHash,
        uint256 signerBitmap,
        uint256 signedStake,
        uint256 totalStake
    );
    event TaskRejected(
        uint256 indexed taskId,
        uint256 indexed jobId,
        uint8 indexed performerId,
        uint32 attempt,
        bytes32 resultHash,
        uint256 signerBitmap,
        uint256 signedStake,
        uint256 totalStake
    );

    error BadAttempt(uint32 attempt);
    error TaskAlreadyApproved(uint256 taskId);
    error AttemptAlreadyDecided(uint256 taskId, uint32 attempt);
    error NoActiveStake();
    error SignersNotStrictlyIncreasing(uint256 position);
    error InactiveSigner(uint8 id);
    error PerformerCannotAttest(uint8 id);
    error UnknownPerformer(uint8 id);
    error BadPerformerSignature(address recovered, address expected);
    error QuorumNotReached(uint256 signedStake, uint256 totalStake, bool approve);
    error InvalidAggregateSignature();

    constructor(OperatorRegistry operatorRegistry) {
        registry = operatorRegistry;
    }

    /// @dev The signers of a submission, as the registry sees them now.
    struct Tally {
        uint256 signers;
        uint256 signedStake;
        uint256 totalStake;
        bytes signersKey;
    }

    function submitTask(
        TaskInfo calldata task,
        bool approve,
        bytes calldata performerSignature,
        bytes calldata aggregateSignature,
        uint8[] calldata signerIds
    ) external {
        _checkUndecided(task);
        Tally memory tally = _tally(task.performerId, signerIds);
        if (!quorumReached(tally.signedStake, tally.totalStake, approve)) {
            revert QuorumNotReached(tally.signedStake, tally.totalStake, approve);
        }
        _checkPerformer(task, performerSignature);
        bytes memory messagePoint =
            BLS12381.hashToG2(abi.encodePacked(voteMessage(task.taskId, task.resultHash, approve)), SIGNATURE_DST);
        if (!BLS12381.verify(tally.signersKey, messagePoint, aggregateSignature)) revert InvalidAggregateSignature();

        _taskFlags[task.taskId >> 5] |= ((approve ? 1 : 0) | (1 << task.attempt)) << ((task.taskId & 31) * 8);
        _count(_attested, signerIds);
        _increment(approve ? _executed : _rejected, task.performerId);
        if (approve) {
            emit TaskSubmitted(
                task.taskId,
                task.jobId,
                task.performerId,
                task.attempt,
                task.resultHash,
                tally.signers,
                tally.signedStake,
                tally.totalStake
            );
        } else {
            emit TaskRejected(
                task.taskId,
                task.jobId,
                task.performerId,
                task.attempt,
                task.resultHash,
                tally.signers,
                tally.signedStake,
                tally.totalStake
            );
        }
    }

    /// @notice The quorum rule: approve needs 3·signed ≥ 2·total, reject 3·signed ≥ total.
    function quorumReached(uint256 signedStake, uint256 totalStake, bool approve) public pure returns (bool) {
        return totalStake > 0 && signedStake * 3 >= totalStake * (approve ? 2 : 1);
    }

    /// @notice The 32 bytes attesters sign (with BLS) to vote on a task's result.
    function voteMessage(uint256 taskId, bytes32 resultHash, bool approve) public view returns (bytes32) {
        return keccak256(abi.encode(VOTE_TAG, block.chainid, address(this), taskId, resultHash, approve));
    }

    /// @notice The EIP-712 digest a performer signs to claim `task`'s result.
    function taskResultDigest(TaskInfo calldata task) public view returns (bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(TASK_RESULT_TYPEHASH, task.taskId, task.jobId, task.attempt, task.performerId, task.resultHash)
        );
        bytes32 domain = keccak256(
            abi.encode(_DOMAIN_TYPEHASH, keccak256(bytes(NAME)), keccak256(bytes(VERSION)), block.chainid, address(this))
        );
        return keccak256(abi.encodePacked("\x19\x01", domain, structHash));
    }

    /// @notice Whether `taskId` was approved, and which attempts (bit a for attempt a) were decided.
    function taskStatus(uint256 taskId) external view returns (bool approved, uint8 decidedAttempts) {
        uint256 own = (_taskFlags[taskId >> 5] >> ((taskId & 31) * 8)) & 0xff;
        return (own & 1 != 0, uint8(own & 0xfe));
    }

    /// @notice Tasks operator `id` attested, performed (approved) and performed (rejected).
    function operatorCounters(uint8 id) external view returns (uint32 attested, uint32 executed, uint32 rejected) {
        return (_read(_attested, id), _read(_executed, id), _read(_rejected, id));
    }

    function _checkUndecided(TaskInfo calldata task) private view {
        if (task.attempt == 0 || task.attempt > MAX_ATTEMPT) revert BadAttempt(task.attempt);
        uint256 own = _taskFlags[task.taskId >> 5] >> ((task.taskId & 31) * 8);
        if (own & 1 != 0) revert TaskAlreadyApproved(task.taskId);
        if (own & (1 << task.attempt) != 0) revert AttemptAlreadyDecided(task.taskId, task.attempt);
    }

    function _tally(uint8 performerId, uint8[] calldata signerIds) private view returns (Tally memory tally) {
        (uint256 active, uint256 totalStake, bytes memory aggregateKey) = registry.activeSet();
        if (totalStake == 0) revert NoActiveStake();
        tally.totalStake = totalStake;
        tally.signers = _signerBitmap(signerIds, active);
        if (tally.signers & (1 << performerId) != 0) revert PerformerCannotAttest(performerId);
        (tally.signersKey, tally.signedStake) =
            _signersKeyAndStake(signerIds, active & ~tally.signers, totalStake, aggregateKey);
    }

    function _signerBitmap(uint8[] calldata signerIds, uint256 active) private pure returns (uint256 bitmap) {
        for (uint256 i = 0; i < signerIds.length; ++i) {
            uint8 id = signerIds[i];
            if (i > 0 && id <= signerIds[i - 1]) revert SignersNotStrictlyIncreasing(i);
            if (active & (1 << id) == 0) revert InactiveSigner(id);
            bitmap |= 1 << id;
        }
    }

    function _checkPerformer(TaskInfo calldata task, bytes calldata signature) private view {
        address expected = registry.getOperator(task.performerId).account;
        if (expected == address(0)) revert UnknownPerformer(task.performerId);
        address recovered = _recover(taskResultDigest(task), signature);
        if (recovered != expected) revert BadPerformerSignature(recovered, expected);
    }

    /// @dev The signers' summed public key and stake: added up from the signers, or, when
    ///      fewer operators stayed silent than signed, the active set's sum minus the silent.
    function _signersKeyAndStake(
        uint8[] calldata signerIds,
        uint256 silent,
        uint256 totalStake,
        bytes memory aggregateKey
    ) private view returns (bytes memory key, uint256 stake) {
        uint256 silentCount = _popcount(silent);
        if (signerIds.length <= silentCount) {
            key = new bytes(BLS12381.G1_LENGTH);
            for (uint256 i = 0; i < signerIds.length; ++i) {
                (bytes memory operatorKey, uint96 operatorStake) = registry.keyAndStake(signerIds[i]);
                key = BLS12381.g1Add(key, operatorKey);
                stake += operatorStake;
            }
            return (key, stake);
        }
        key = aggregateKey;
        stake = totalStake;
        for (uint256 id = 0; silent != 0; ++id) {
            if (silent & (1 << id) == 0) continue;
            silent &= ~(uint256(1) << id);
            (bytes memory operatorKey, uint96 operatorStake) = registry.keyAndStake(uint8(id));
            key = BLS12381.g1Add(key, BLS12381.g1Negate(operatorKey));
            stake -= operatorStake;
        }
    }

    /// @dev Add one to the counter of every id in `ids` (sorted), writing each storage word once.
    function _count(mapping(uint256 => uint256) storage counters, uint8[] calldata ids) private {
        uint256 i = 0;
        while (i < ids.length) {
            uint256 word = uint256(ids[i]) >> 3;
            uint256 value = counters[word];
            for (; i < ids.length && uint256(ids[i]) >> 3 == word; ++i) {
                value += uint256(1) << ((uint256(ids[i]) & 7) * 32);
            }
            counters[word] = value;
        }
    }

    function _increment(mapping(uint256 => uint256) storage counters, uint8 id) private {
        counters[uint256(id) >> 3] += uint256(1) << ((uint256(id) & 7) * 32);
    }

    function _read(mapping(uint256 => uint256) storage counters, uint8 id) private view returns (uint32) {
        return uint32(counters[uint256(id) >> 3] >> ((uint256(id) & 7) * 32));
    }

    function _popcount(uint256 x) private pure returns (uint256 count) {
        for (; x != 0; ++count) {
            x &= x - 1;
        }
    }

    function _recover(bytes32 digest, bytes calldata signature) private pure returns (address) {
        if (signature.length != 65) return address(0);
        bytes32 r = bytes32(signature[0:32]);
        bytes32 s = bytes32(signature[32:64]);
        uint8 v = uint8(signature[64]);
        if (uint256(s) > 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0 || (v != 27 && v != 28)) {
            return address(0);
        }
        return ecrecover(digest, v, r, s);
    }
}
